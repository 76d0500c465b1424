"""Real DICOM peers for tests and benches: Orthanc (Debian package) and DCMTK's storescu.

Orthanc runs with a generated config on free ports, a temp storage dir, no authentication
and radflow's AE registered as a known modality (C-FIND needs it). A Lua filter logs every
instance Orthanc receives (duplicates included) to a file, so a test can count how often
each instance reached the archive, and rejects one series on demand (a broken archive).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from radflow.devstack import free_port

ORTHANC = "/usr/sbin/Orthanc"
STORESCU = "/usr/bin/storescu"  # DCMTK's, not pynetdicom's script of the same name in the venv
# DCMTK 3.6.7 (storescu, and Orthanc linked against it) leaves Nagle on unless told so at
# runtime; without it every C-STORE waits ~88 ms for a delayed ACK.
NODELAY_ENV = {**os.environ, "TCP_NODELAY": "1"}

_FILTER = """
function ReceivedInstanceFilter(dicom, origin, info)
  local log = io.open("{log}", "a")
  log:write(dicom.SOPInstanceUID .. "\\n")
  log:close()
  local f = io.open("{reject}", "r")
  if f ~= nil then
    local series = f:read("*l")
    f:close()
    if series == dicom.SeriesInstanceUID then
      return false
    end
  end
  return true
end
"""


@dataclass
class Orthanc:
    root: Path
    known_aet: str = "RADFLOW"
    aet: str = "ORTHANC"
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def received_log(self) -> Path:
        return self.root / "received.log"

    @property
    def reject_file(self) -> Path:
        return self.root / "reject-series.txt"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 20.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        lua = self.root / "filter.lua"
        lua.write_text(_FILTER.format(log=self.received_log, reject=self.reject_file))
        config = {
            "Name": "radflow-test",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": {"radflow": [self.known_aet, "127.0.0.1", 11112]},
            "LuaScripts": [str(lua)],
            "Plugins": [],
            "StorageCompression": False,
            "SaveJobs": False,
        }
        cfg = self.root / "orthanc.json"
        cfg.write_text(json.dumps(config))
        log = open(self.root / "orthanc.log", "ab")
        self.process = subprocess.Popen([ORTHANC, str(cfg)], stdout=log, stderr=subprocess.STDOUT, env=NODELAY_ENV)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}, see {self.root / 'orthanc.log'}")
            try:
                if httpx.get(f"{self.url}/system", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("Orthanc did not come up")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # ------------------------------------------------------------------ observations
    def study_instance_count(self, study_uid: str) -> int:
        """Orthanc's own count, from its REST API (tests only; radflow itself asks by C-FIND)."""
        found = httpx.post(f"{self.url}/tools/find", json={"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}},
                           timeout=10.0)
        found.raise_for_status()
        return len(found.json())

    def receptions(self) -> Counter[str]:
        """How many times each SOP Instance UID arrived (accepted, rejected or duplicate)."""
        if not self.received_log.exists():
            return Counter()
        return Counter(line for line in self.received_log.read_text().splitlines() if line)

    def reject_series(self, series_uid: str | None) -> None:
        if series_uid is None:
            self.reject_file.unlink(missing_ok=True)
        else:
            self.reject_file.write_text(series_uid + "\n")

    def statistics(self) -> dict:
        return httpx.get(f"{self.url}/statistics", timeout=10.0).json()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    if not Path(ORTHANC).exists():
        pytest.fail(f"{ORTHANC} missing: apt-get install -y orthanc (the integration tests need a real archive)")
    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    server.start()
    yield server
    server.stop()


def storescu(host: str, port: int, files: Sequence[Path], *, calling: str = "MODALITY1", called: str = "RADFLOW",
             timeout_s: float = 120.0, extra: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """DCMTK storescu, one association for all files (by absolute path: the venv shadows the name)."""
    if not Path(STORESCU).exists():
        pytest.fail(f"{STORESCU} missing: apt-get install -y dcmtk")
    cmd = [STORESCU, "-aet", calling, "-aec", called, *extra, host, str(port), *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=NODELAY_ENV)


def closed_by_peer(sock: socket.socket, wait_s: float) -> bool:
    """True when the peer closes (FIN or RST) the connection within `wait_s`."""
    sock.settimeout(wait_s)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
