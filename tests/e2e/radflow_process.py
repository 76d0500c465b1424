"""A radflow command (`radflow dev`, `radflow demo`) as a user runs it: a separate process on free ports.

Its output is collected line by line while it runs, so a test can wait for a line and
show the whole log when an assertion fails. `stop()` sends SIGINT (Ctrl-C) and waits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from radflow.devstack import free_port

ROOT = Path(__file__).resolve().parents[2]


def free_ports(*names: str) -> dict[str, int]:
    return {name: free_port() for name in names}


def port_flags(ports: dict[str, int]) -> list[str]:
    """`--temporal-port N --ui-port N ...` for the ports `radflow dev` and `radflow demo` take."""
    flags = []
    for name in ("temporal", "ui", "mllp", "api", "dicom"):
        if name in ports:
            flags += [f"--{name}-port", str(ports[name])]
    return flags


class RadflowProcess:
    def __init__(self, args: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.cwd = cwd
        self.env = os.environ | {"RADFLOW_LOG_LEVEL": "INFO"} | (env or {})
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._reader: asyncio.Task | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def start(self) -> RadflowProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "radflow", *self.args, cwd=self.cwd, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode("utf-8", "replace"))

    async def wait_for_line(self, text: str, timeout_s: float = 90) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            assert self.proc is not None
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
        raise AssertionError(f"no line with {text!r} after {timeout_s}s; output:\n{self.output[-4000:]}")

    async def wait_healthy(self, url: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                assert self.proc.returncode is None, f"radflow exited during startup:\n{self.output[-4000:]}"
                try:
                    if (await http.get(url, timeout=2)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"{url} not healthy after {timeout_s}s:\n{self.output[-4000:]}")

    async def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            self.kill()
            raise AssertionError(f"radflow still running after {timeout_s}s:\n{self.output[-4000:]}") from None
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self, timeout_s: float = 45) -> int:
        """Ctrl-C, as a user stops it; returns the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        return await self.wait(timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
