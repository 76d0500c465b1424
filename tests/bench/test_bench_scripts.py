"""Every benchmark script starts: its imports resolve and its command line parses.

The benchmarks import helpers from each other (bench/burst.py uses bench/mllp_ingest.py and
bench/ack_open_loop.py); a renamed helper once broke two of them without any test noticing.
Each script runs as users run it, a separate process with `--help`; the helper modules without a
command line (failover_checks.py...) must at least import cleanly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))


def test_there_are_benchmarks_to_check() -> None:
    assert len(SCRIPTS) >= 10


def test_every_benchmark_answers_help() -> None:
    procs = {script.name: subprocess.Popen([sys.executable, str(script), "--help"], cwd=ROOT,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for script in SCRIPTS}
    failed = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        has_cli = '__name__ == "__main__"' in (ROOT / "bench" / name).read_text()
        if proc.returncode != 0 or (has_cli and "usage:" not in out):
            failed[name] = (proc.returncode, err.strip().splitlines()[-1:] if err.strip() else out[:200])
    assert not failed, f"benchmarks that do not start: {failed}"
