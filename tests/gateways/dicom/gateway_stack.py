"""A radflow stack with the DICOM gateway: real worker + MLLP gateway + DicomGateway on loopback.

Plus an ORM^O01 builder, so tests create orders the way a RIS feed does (HL7 over MLLP).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from radflow.gateways.dicom.server import DicomGateway, start_dicom_gateway
from radflow.infra.mllp_client import MllpClient
from radflow.infra.settings import Settings
from tests.stack import Stack, running_stack, stack_settings


def dicom_settings(task_queue: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(data_dir=data_dir, sync_consumers=["worklist"], dicom_host="127.0.0.1", dicom_port=0)
    values.update(overrides)
    return stack_settings(task_queue, **values)


@dataclass
class DicomStack:
    stack: Stack
    gateway: DicomGateway

    @property
    def port(self) -> int:
        return self.gateway.port

    @property
    def service(self):
        return self.stack.service

    async def send_hl7(self, message: bytes) -> str:
        async with MllpClient("127.0.0.1", self.stack.mllp_port, timeout_s=15) as mllp:
            ack = await mllp.send(message)
        return ack.decode("latin-1")


@contextlib.asynccontextmanager
async def dicom_stack(client: Client, settings: Settings, *, gateway_settings: Settings | None = None) -> AsyncIterator[DicomStack]:
    async with running_stack(client, settings, api=False) as stack:
        gateway = await start_dicom_gateway(gateway_settings or settings, stack.service, with_storage=False)
        try:
            yield DicomStack(stack, gateway)
        finally:
            await gateway.stop()


def orm(control_id: str, *, accession: str, mrn: str, family: str, given: str, station: str, start: str,
        order_control: str = "NW", msh18: str = "", encoding: str = "latin-1", modality: str = "CT",
        code: str = "CTHEAD^CT head^L") -> bytes:
    """ORM^O01 v2.4; accession in OBR-18, station AE in OBR-21, start in OBR-27.4, modality in OBR-24."""
    obr = ["OBR", "1", f"PL{accession}^CPOE", "", code] + [""] * 13
    obr += [accession, "", "", station, "", "", modality, "", "", f"^^^{start}^^R"]
    segments = [
        f"MSH|^~\\&|CPOE|HOSP|RADFLOW|RAD|20300101080000||ORM^O01|{control_id}|P|2.4" + (f"||||||{msh18}" if msh18 else ""),
        f"PID|1||{mrn}^^^HOSP^MR||{family}^{given}||19800101|F",
        "PV1|1|O|CLINIC^1|||||0123^Referrer^Rae|||||||||||V" + accession,
        f"ORC|{order_control}|PL{accession}^CPOE|{accession}|||||||||0456^Orderer^Olga",
        "|".join(obr),
    ]
    return "\r".join(segments).encode(encoding) + b"\r"
