"""The processes of the failover run (bench/failover.py): two of each radflow role, as an operator starts them.

Shared by every radflow process: one Temporal dev server (SQLite file) and one PostgreSQL
database (RADFLOW_READ_MODEL_URL: worklist, MPPS, attachments). Nothing else: each process has
its own data directory and working directory (its "host"), each DICOM gateway its own gateway id,
spool and archive queue. Destinations: an EHR MLLP sink (in this process), the Medplum-based test
FHIR server and Orthanc as the archive.

`Cluster.kill(name)` is `kill -9` of the process group; `restart(name)` starts the same command
with the same environment (same gateway id, same spool), as a process supervisor would.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from radflow.devstack import DevServer, free_port

ROLES = ("worker", "mllp", "dicom", "api")
MEMBERS = ("a", "b")
VT, FS_CR = b"\x0b", b"\x1c\x0d"


@dataclass
class Proc:
    """One radflow process: its role, command line, environment and where it is reachable."""

    name: str  # e.g. "dicom-b"
    role: str
    env: dict[str, str]
    home: Path  # data dir and working directory: this process's own disk
    port: int = 0  # MLLP / DICOM / API listener (0 for the worker)
    health_port: int = 0
    popen: subprocess.Popen | None = None

    @property
    def ready_url(self) -> str:
        if self.role == "api":
            return f"http://127.0.0.1:{self.port}/healthz"
        return f"http://127.0.0.1:{self.health_port}/readyz"

    def start(self) -> None:
        log = open(self.home / "process.log", "ab")
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.popen = subprocess.Popen([sys.executable, "-m", "radflow", self.role], cwd=self.home, env=env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the current incarnation; 0 once it is gone."""
        return cpu_seconds(self.popen.pid) if self.alive() and self.popen else 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class EhrSink:
    """The EHR: answers AA to every ORU radflow delivers and counts them per accession (ORC-3)."""

    def __init__(self) -> None:
        self.by_accession: collections.Counter[str] = collections.Counter()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                frame = await reader.readuntil(FS_CR)
                text = frame[frame.index(VT) + 1: -2].decode("utf-8", "replace")
                fields = {s.split("|", 1)[0]: s.split("|") for s in text.replace("\n", "\r").split("\r") if s}
                msh, orc = fields.get("MSH", []), fields.get("ORC", [])
                control = msh[9] if len(msh) > 9 else ""
                self.by_accession[orc[3] if len(orc) > 3 else ""] += 1
                ack = f"MSH|^~\\&|EHR|GENHOSP|RADFLOW|RAD|20300101000000||ACK|A{control}|P|2.3\rMSA|AA|{control}"
                writer.write(VT + ack.encode() + FS_CR)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


@dataclass
class Cluster:
    root: Path
    pg_url: str
    ehr_port: int
    fhir_base_url: str
    archive: tuple[str, int, str]  # host, DICOM port, AE title
    stable_age_s: float = 1.0
    temporal: DevServer | None = None
    procs: dict[str, Proc] = field(default_factory=dict)
    kills: collections.Counter[str] = field(default_factory=collections.Counter)  # per role
    own_exits: collections.Counter[str] = field(default_factory=collections.Counter)  # per process name
    recovery_s: list[tuple[str, float]] = field(default_factory=list)  # (name, kill -> ready again)
    down: set[str] = field(default_factory=set)  # killed on purpose, being restarted

    async def start(self) -> None:
        self.temporal = DevServer(db_file=self.root / "temporal" / "temporal.db", port=free_port(), ui_port=None,
                                  log_file=self.root / "temporal.log")
        await self.temporal.start(timeout_s=120)
        for role in ROLES:
            for member in MEMBERS:
                proc = self._proc(role, member)
                self.procs[proc.name] = proc
                proc.start()
        await asyncio.gather(*(self.until_ready(name) for name in self.procs))

    def _proc(self, role: str, member: str) -> Proc:
        name = f"{role}-{member}"
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        host, archive_port, archive_aet = self.archive
        env = {
            "RADFLOW_TEMPORAL_ADDRESS": self.temporal.address if self.temporal else "",
            "RADFLOW_READ_MODEL_URL": self.pg_url,
            "RADFLOW_DATA_DIR": str(home),
            "RADFLOW_LOG_LEVEL": "INFO",
            "RADFLOW_HEALTH_HOST": "127.0.0.1",
            "RADFLOW_EHR_MLLP_HOST": "127.0.0.1",
            "RADFLOW_EHR_MLLP_PORT": str(self.ehr_port),
            "RADFLOW_FHIR_BASE_URL": self.fhir_base_url,
            "RADFLOW_DICOM_ARCHIVE_HOST": host,
            "RADFLOW_DICOM_ARCHIVE_PORT": str(archive_port),
            "RADFLOW_DICOM_ARCHIVE_AE_TITLE": archive_aet,
            "RADFLOW_DICOM_STABLE_AGE_S": str(self.stable_age_s),
            "RADFLOW_API_AUTH": "none",  # loopback only; authentication has its own tests
        }
        proc = Proc(name, role, env, home)
        if role != "api":
            proc.health_port = free_port()
            env["RADFLOW_HEALTH_PORT"] = str(proc.health_port)
        if role == "mllp":
            proc.port = free_port()
            env.update(RADFLOW_MLLP_HOST="127.0.0.1", RADFLOW_MLLP_PORT=str(proc.port))
        elif role == "dicom":
            proc.port = free_port()
            env.update(RADFLOW_DICOM_HOST="127.0.0.1", RADFLOW_DICOM_PORT=str(proc.port),
                       RADFLOW_DICOM_GATEWAY_ID=f"gw-{member}")
        elif role == "api":
            proc.port = free_port()
            env.update(RADFLOW_API_HOST="127.0.0.1", RADFLOW_API_PORT=str(proc.port))
        return proc

    def ports(self, role: str) -> list[int]:
        return [self.procs[f"{role}-{m}"].port for m in MEMBERS]

    async def until_ready(self, name: str, timeout_s: float = 180.0) -> float:
        """Seconds until the process answers ready (readyz / healthz 200)."""
        proc = self.procs[name]
        t0 = time.monotonic()
        async with httpx.AsyncClient(timeout=3.0) as http:
            while time.monotonic() - t0 < timeout_s:
                if not proc.alive():
                    raise RuntimeError(f"{name} exited with {proc.popen.returncode if proc.popen else '?'} "
                                       f"(see {proc.home / 'process.log'})")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(proc.ready_url)).status_code == 200:
                        return time.monotonic() - t0
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout_s:.0f} s (see {proc.home / 'process.log'})")

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds per role (both processes; incarnations killed earlier not included), and Temporal's."""
        out: dict[str, float] = collections.defaultdict(float)
        for proc in self.procs.values():
            out[proc.role] += proc.cpu_s()
        if self.temporal is not None and self.temporal.process is not None:
            out["temporal"] = cpu_seconds(self.temporal.process.pid)
        return {k: round(v, 1) for k, v in out.items()}

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.alive():
            assert proc.popen is not None
            os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()
        self.kills[proc.role] += 1

    async def kill_and_restart(self, name: str, pause_s: float) -> None:
        self.down.add(name)
        t0 = time.monotonic()
        try:
            self.kill(name)
            await asyncio.sleep(pause_s)
            for _ in range(3):  # a restart that dies while starting is a finding (own exit), then retried
                self.procs[name].start()
                try:
                    await self.until_ready(name)
                    break
                except RuntimeError:
                    self.own_exits[name] += 1
            else:
                raise RuntimeError(f"{name} did not come back after kill -9 (see {self.procs[name].home / 'process.log'})")
            self.recovery_s.append((name, time.monotonic() - t0))
        finally:
            self.down.discard(name)

    async def supervise(self) -> None:
        """Restart a process that died without being killed on purpose (a crash is a finding: counted)."""
        while True:
            await asyncio.sleep(0.5)
            for name, proc in self.procs.items():
                if name not in self.down and proc.popen is not None and not proc.alive():
                    self.own_exits[name] += 1
                    proc.start()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.alive():
                assert proc.popen is not None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        for proc in self.procs.values():
            if proc.popen is None:
                continue
            try:
                proc.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()
        if self.temporal is not None:
            self.temporal.stop()
