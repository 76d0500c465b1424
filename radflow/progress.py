"""Progress bars for long CLI jobs (rich), on stderr so stdout keeps the results.

Drawn only when stderr is a terminal: in CI, pipes and log files nothing is drawn and the
command's summary line is the record. Thread-safe (rich's Progress locks), so a bar may be
advanced from a thread pool.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Advance = Callable[[int], None]


@contextmanager
def progress(total: int | None, description: str, stream: TextIO | None = None) -> Iterator[Advance]:
    """Yields `advance(n)`; a no-op when the stream is not a terminal or `total` is 0 (nothing worth a
    bar). `total` None = unknown (the bar counts up)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=stream or sys.stderr)
    if not console.is_terminal or total == 0:
        yield lambda n=1: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
