"""Lines the demo and the banner print stay whole when another thread logs meanwhile.

CI runs with PYTHONUNBUFFERED=1: `print()` then reaches the pipe as two writes (text, newline),
and a log record written between them glued itself to a demo step, so the step's line no
longer ended where the demo test (and a reader's grep) expects it.
"""

from __future__ import annotations

import io
import subprocess
import sys

from radflow.infra.console import print_line


class _Recorder(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_a_line_is_one_write(monkeypatch) -> None:
    out = _Recorder()
    monkeypatch.setattr(sys, "stdout", out)
    print_line("[3/9] DICOM MWL C-FIND: 1 worklist item (study 1.2.3)")
    assert out.writes == ["[3/9] DICOM MWL C-FIND: 1 worklist item (study 1.2.3)\n"]


_RACE = r"""
import logging, sys, threading
from radflow.infra.console import print_line
logging.basicConfig(stream=sys.stdout, format="LOG %(message)s", level=logging.INFO)
stop = threading.Event()
def chatter():
    while not stop.is_set():
        logging.info("x")
t = threading.Thread(target=chatter); t.start()
for i in range(3000):
    print_line(f"STEP {i} END")
stop.set(); t.join()
"""


def test_lines_stay_whole_under_unbuffered_output_with_a_logging_thread() -> None:
    # The real condition: a separate unbuffered interpreter, a thread logging to the same stream.
    done = subprocess.run([sys.executable, "-u", "-c", _RACE], capture_output=True, text=True, timeout=120, check=True)
    steps = [line for line in done.stdout.splitlines() if line.startswith("STEP")]
    assert len(steps) == 3000
    assert all(line.endswith(" END") for line in steps), [line for line in steps if not line.endswith(" END")][:3]
