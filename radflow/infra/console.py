"""Lines printed to stdout while the stack's threads are logging to the same terminal or pipe.

`print()` writes the text and the newline as two writes; under `PYTHONUNBUFFERED` (or any
write-through stdout) a log record from another thread can land between them and glue itself
to the end of the line, which breaks anyone (a person, a test, a log shipper) reading lines.
One `write` of the whole line keeps it whole, as `logging.StreamHandler` does for records.
"""

from __future__ import annotations

import sys


def print_line(text: str) -> None:
    """Print `text` as one whole line (one write, then flush)."""
    out = sys.stdout
    out.write(text + "\n")
    out.flush()
