"""Runs the test FHIR server (Medplum's engine, `server.mjs`) for pytest.

Node dependencies are installed on first use into `tests/fhir_server/node_modules` (gitignored)
under a file lock, so parallel test runs in one working tree install once.

Stopping keeps the data: `stop()` sends SIGTERM and the launcher writes its store to the
snapshot file, `start()` on the same port reads it back. A stopped server refuses
connections (what a client sees when an EHR's FHIR endpoint is down); `pause()` instead
freezes the process (SIGSTOP) so requests hang until the client's timeout.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from radflow.devstack import free_port

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
BASE_PATH = "/fhir/R4"


def _installed() -> bool:
    """Every pinned dependency present at its pinned version (a bumped pin reinstalls)."""
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        manifest = NODE_MODULES / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text()).get("version") != version:
            return False
    return True


def ensure_node_modules() -> None:
    if _installed():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the test FHIR server (apt-get install nodejs npm)")
    with open(HERE / ".npm-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            return
        cmd = [npm, "ci" if (HERE / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
        done = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed in {HERE}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


class FhirTestServer:
    def __init__(self, *, port: int | None = None, host: str = "127.0.0.1", token: str = "",
                 data_file: Path | None = None, log_file: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.token = token
        self._tmp = None if data_file else tempfile.TemporaryDirectory(prefix="fhir-test-")
        self.data_file = data_file or Path(self._tmp.name) / "store.json"  # type: ignore[union-attr]
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{BASE_PATH}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, timeout_s: float = 30.0) -> None:
        ensure_node_modules()
        cmd = ["node", str(HERE / "server.mjs"), "--port", str(self.port), "--host", self.host,
               "--data", str(self.data_file)]
        env = dict(os.environ, FHIR_TOKEN=self.token)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        if out is not subprocess.DEVNULL:
            out.close()
        await self._wait_healthy(timeout_s)

    async def _wait_healthy(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"FHIR test server exited with {self.process.returncode} (log: {self.log_file})")
                try:
                    if (await http.get(f"http://{self.host}:{self.port}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if loop.time() > deadline:
                    raise TimeoutError(f"FHIR test server not healthy on port {self.port}")
                await asyncio.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        self.resume()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def pause(self) -> None:
        if self.running:
            self.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]

    def resume(self) -> None:
        if self.running:
            self.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


@pytest.fixture(scope="module")
async def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FhirTestServer]:
    """One FHIR server per test module (import this fixture into the module that needs it)."""
    where = tmp_path_factory.mktemp("fhir")
    server = FhirTestServer(data_file=where / "store.json", log_file=where / "server.log")
    await server.start()
    yield server
    server.close()
