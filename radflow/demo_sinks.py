"""The destinations `radflow demo` runs next to the dev stack, each a runner component.

- an EHR MLLP sink (in this process): answers AA to every message and prints what it got;
- the Medplum-based FHIR server (radflow/fhir_server) when Node.js and npm are installed;
- Orthanc as the archive (DICOM + its web UI, DICOMweb when the plugin is installed) when
  the Debian package is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import hl7
import httpx

from radflow.infra.console import print_line
from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.gateways.mllp import serve_mllp
from radflow.devstack import free_port
from radflow.fhir_server import FhirServer

ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


@dataclass
class Received:
    kind: str  # MSH-9, e.g. ORU^R01
    control_id: str
    accession: str  # OBR-18
    result_status: str  # OBR-25


class EhrSink:
    """An EHR's HL7 receiver: acknowledges everything (AA) and keeps what it received."""

    name = "ehr-sink"

    def __init__(self, host: str, port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.received: list[Received] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, payload: bytes) -> bytes:
        text = payload.decode("utf-8", "replace")
        got = _summarise(text)
        self.received.append(got)
        print_line(f"      EHR sink  <- {got.kind} for {got.accession or '?'} (OBR-25 {got.result_status or '-'}), "
              f"control id {got.control_id}: answered AA")
        return build_ack(AckHeader.from_text(text), AckCode.AA, application="DEMO-EHR").encode()

    async def start(self) -> None:
        self.server = await serve_mllp(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), timeout=5)

    def endpoints(self) -> list[tuple[str, str]]:
        return [("EHR MLLP sink", f"{self.host}:{self.port}  (reports are printed here)")]

    def failed(self) -> asyncio.Task | None:
        return None


def _summarise(text: str) -> Received:
    try:
        message = hl7.parse(text.replace("\n", "\r"))
        msh = message.segment("MSH")
        obr = message.segment("OBR") if any(str(s[0]) == "OBR" for s in message) else None
        return Received(kind=str(msh[9]), control_id=str(msh[10]),
                        accession=str(obr[18]) if obr is not None and len(obr) > 18 else "",
                        result_status=str(obr[25]) if obr is not None and len(obr) > 25 else "")
    except Exception:  # noqa: BLE001 - a sink prints what it can of anything it gets
        return Received(kind="(unparsable)", control_id="", accession="", result_status="")


class FhirComponent:
    """The FHIR server, its npm packages installed into the data dir on first use."""

    name = "fhir-server"

    def __init__(self, data_dir: Path, host: str) -> None:
        where = data_dir / "fhir-server"
        where.mkdir(parents=True, exist_ok=True)
        self.server = FhirServer(where / "runtime", host=host, data_file=where / "store.json",
                                 log_file=where / "server.log")

    @property
    def base_url(self) -> str:
        return self.server.base_url

    async def start(self) -> None:
        await self.server.start(timeout_s=120)

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    def endpoints(self) -> list[tuple[str, str]]:
        return [("FHIR server", f"{self.base_url}  (Medplum engine, data {self.server.data_file})")]

    def failed(self) -> asyncio.Task | None:
        return None


@dataclass
class OrthancComponent:
    """Orthanc as the archive radflow forwards studies to and confirms them in (C-FIND)."""

    root: Path
    host: str
    radflow_aet: str
    radflow_dicom_port: int
    aet: str = "DEMOPACS"
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    name: str = "orthanc"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web" if Path(ORTHANC_DICOMWEB).exists() else ""

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "radflow-demo",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": self.host not in ("127.0.0.1", "localhost", "::1"),
            "AuthenticationEnabled": False,
            # radflow confirms archived studies by C-FIND, which Orthanc answers for known peers only.
            "DicomModalities": {"radflow": [self.radflow_aet, self.host, self.radflow_dicom_port]},
            "Plugins": [ORTHANC_DICOMWEB] if self.dicomweb else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "SaveJobs": False,
        }
        cfg = self.root / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=2))
        log = open(self.root / "orthanc.log", "ab")
        # DCMTK inside Orthanc leaves Nagle on unless told: every C-STORE would wait ~88 ms.
        self.process = subprocess.Popen([ORTHANC, str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "TCP_NODELAY": "1"}, start_new_session=True)
        log.close()
        async with httpx.AsyncClient(timeout=1.0) as http:
            for _ in range(300):
                if self.process.poll() is not None:
                    raise RuntimeError(f"Orthanc exited with {self.process.returncode} (see {self.root / 'orthanc.log'})")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/system")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"Orthanc did not answer on {self.url} (see {self.root / 'orthanc.log'})")

    async def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    async def study_instances(self, study_uid: str) -> int:
        async with httpx.AsyncClient(timeout=10.0) as http:
            found = await http.post(f"{self.url}/tools/find",
                                    json={"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}})
            found.raise_for_status()
            return len(found.json())

    def endpoints(self) -> list[tuple[str, str]]:
        return [("Orthanc (PACS)", f"{self.aet}@{self.host}:{self.dicom_port}  web {self.url}/app/explorer.html")]

    def failed(self) -> asyncio.Task | None:
        return None


def orthanc_installed() -> bool:
    return Path(ORTHANC).exists()


def node_installed() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None
