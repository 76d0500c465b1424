"""Running radflow commands as their own processes, on pipes (as CI does) or on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

BAR = "━"  # the glyph rich draws progress bars with


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADFLOW_")}
    return env | {"TERM": "xterm-256color", "COLUMNS": "100"}


def radflow(*argv: str) -> list[str]:
    return [sys.executable, "-m", "radflow", *argv]


def run_piped(argv: list[str], timeout_s: float = 120.0) -> tuple[int, str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=_env())
    return done.returncode, done.stdout, done.stderr


def run_in_pty(argv: list[str], timeout_s: float = 120.0) -> tuple[int, str]:
    """stdin/stdout/stderr on a pseudo-terminal; returns the exit code and what the terminal got."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=_env(), close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")
