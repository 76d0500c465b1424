"""Starts the Node FHIR server (`server.mjs` beside this file) and installs what it needs.

Node resolves the server's imports next to the script, and the installed radflow package
may be read-only: so the launcher sources and the pinned `package.json`/lock are copied
into a runtime directory (the demo's data dir, or the tests' folder) and `npm ci` installs
the Medplum packages there, once, under a file lock (parallel starts install once).

Stopping keeps the data: `stop()` sends SIGTERM and the launcher writes its store to the
snapshot file, `start()` on the same port reads it back. `pause()` freezes the process
(SIGSTOP) so requests hang until the client's timeout (what a hung EHR endpoint does).
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
from pathlib import Path

import httpx

from radflow.devstack import free_port

SOURCE = Path(__file__).resolve().parent
SOURCES = ("server.mjs", "repository.mjs", "schema.mjs", "search.mjs", "package.json", "package-lock.json")
BASE_PATH = "/fhir/R4"


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def _installed(runtime: Path) -> bool:
    """Every pinned dependency present at its pinned version (a bumped pin reinstalls)."""
    wanted = json.loads((SOURCE / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        manifest = runtime / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text()).get("version") != version:
            return False
    return True


def _copy_sources(runtime: Path) -> None:
    for name in SOURCES:
        src, dst = SOURCE / name, runtime / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst)


def ensure_runtime(runtime: Path) -> Path:
    """The launcher and its npm dependencies in `runtime` (installed on first use); returns it."""
    runtime.mkdir(parents=True, exist_ok=True)
    with open(runtime / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _copy_sources(runtime)
        if _installed(runtime):
            return runtime
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise RuntimeError("node and npm are needed for the FHIR server (apt-get install nodejs npm)")
        cmd = [npm, "ci", "--no-audit", "--no-fund"]
        done = subprocess.run(cmd, cwd=runtime, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed in {runtime}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return runtime


class FhirServer:
    def __init__(self, runtime_dir: Path, *, port: int | None = None, host: str = "127.0.0.1", token: str = "",
                 data_file: Path | None = None, log_file: Path | None = None) -> None:
        self.runtime_dir = runtime_dir
        self.host = host
        self.port = port or free_port(host)
        self.token = token
        self._tmp = None if data_file else tempfile.TemporaryDirectory(prefix="fhir-server-")
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
        runtime = await asyncio.to_thread(ensure_runtime, self.runtime_dir)
        cmd = ["node", str(runtime / "server.mjs"), "--port", str(self.port), "--host", self.host,
               "--data", str(self.data_file)]
        env = dict(os.environ, FHIR_TOKEN=self.token)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(cmd, cwd=runtime, env=env, stdout=out, stderr=subprocess.STDOUT,
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
                    raise RuntimeError(f"FHIR server exited with {self.process.returncode} (log: {self.log_file})")
                try:
                    if (await http.get(f"http://{self.host}:{self.port}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if loop.time() > deadline:
                    raise TimeoutError(f"FHIR server not healthy on port {self.port}")
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
