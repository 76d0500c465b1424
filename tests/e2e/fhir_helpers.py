"""Shared pieces of the FHIR end-to-end tests: settings, an MLLP sender, HL7 messages, FHIR reads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.client import Client

from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.devstack import free_port
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.fhir_server.fixture import FhirTestServer

MLLP_START, MLLP_END = b"\x0b", b"\x1c\x0d"


def e2e_settings(task_queue: str, fhir: FhirTestServer, data_dir: Path, **overrides: object) -> Settings:
    # FHIR is the only consumer: no EHR over MLLP, no worklist file, no archive to forward to.
    values: dict = dict(
        task_queue=task_queue,
        fhir_base_url=fhir.base_url,
        fhir_timeout_s=2.0,
        sync_consumers=["fhir"],
        report_consumers=["fhir"],
        acquisition_consumers=[],
        step_max_attempts=3,
        step_initial_interval_s=0.1,
        step_max_interval_s=0.2,
        temporal_rpc_timeout_s=5.0,
        data_dir=data_dir,
        _env_file=None,
    )
    values.update(overrides)
    return Settings(**values)


async def send_mllp(port: int, message: str) -> str:
    """One framed message over a fresh TCP connection; returns the ACK text."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(MLLP_START + message.encode("utf-8") + MLLP_END)
        await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(MLLP_END), 15)
    finally:
        writer.close()
        await writer.wait_closed()
    return data.strip(MLLP_START + MLLP_END).decode("utf-8")


def ack_code(ack: str) -> str:
    msa = next(s for s in ack.split("\r") if s.startswith("MSA|"))
    return msa.split("|")[1]


@dataclass
class Hl7Order:
    """Synthetic identifiers for one order, and the v2.3 messages of its life."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8].upper())

    @property
    def mrn(self) -> str:
        return f"MRN{self.tag}"

    @property
    def accession(self) -> str:
        return f"ACC{self.tag}"

    @property
    def placer(self) -> str:
        return f"PL{self.tag}"

    @property
    def visit(self) -> str:
        return f"V{self.tag}"

    @property
    def study_uid(self) -> str:
        return f"1.2.826.0.1.3680043.9.7777.{int(self.tag, 16)}"

    def _msh(self, sender: str, kind: str, control: str) -> str:
        return f"MSH|^~\\&|{sender}|GENHOSP|RADFLOW|RAD|20300301080000||{kind}|{control}|P|2.3"

    def _pid(self) -> str:
        return f"PID|1||{self.mrn}^^^GENHOSP^MR||Testpatient^Alpha^Q||19750412|F"

    def adt_a04(self) -> str:
        return "\r".join([
            self._msh("HIS", "ADT^A04", f"ADT{self.tag}"),
            "EVN|A04|20300301080000",
            self._pid(),
            f"PV1|1|O|RAD^R101^1|||||0123^Referrer^Rita^^^Dr|||||||||||{self.visit}",
        ])

    def orm_nw(self) -> str:
        return "\r".join([
            self._msh("CPOE", "ORM^O01", f"ORM{self.tag}"),
            self._pid(),
            f"PV1|1|O|RAD^R101^1|||||0123^Referrer^Rita^^^Dr|||||||||||{self.visit}",
            f"ORC|NW|{self.placer}^CPOE|||SC||1^^^20300305143000^^R||20300301075900|||0456^Orderer^Olga^M^^Dr",
            f"OBR|1|{self.placer}^CPOE||CTHEAD^CT head without contrast^L||20300301075500||||||||||"
            f"0456^Orderer^Olga^M^^Dr||{self.accession}|RP{self.tag}|SPS{self.tag}|CT01|||CT|||"
            "1^^^20300305143000^^R||||^Headache after fall",
            f"ZDS|{self.study_uid}^RADFLOW^Application^DICOM",
        ])

    def oru(self, status: str, text: str, control: str) -> str:
        return "\r".join([
            self._msh("DICTATION", "ORU^R01", control),
            self._pid(),
            f"OBR|1|{self.placer}^CPOE||CTHEAD^CT head without contrast^L|||20300305150000|||||||||||"
            f"{self.accession}|||||||{status}|||||||0999&Reader&Rachel&&&Dr",
            f"OBX|1|TX|&GDT^Report||{text}||||||{status}|||20300305155500",
        ])


class FhirReader:
    """Reads what the FHIR server stores (plain httpx, independent of the client under test)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url + "/", timeout=5)

    async def search(self, rtype: str, **params: str) -> list[dict]:
        resp = await self.http.get(rtype, params=params)
        assert resp.status_code == 200, resp.text
        return [e["resource"] for e in resp.json().get("entry") or []]

    async def by_identifier(self, rtype: str, system: str, value: str) -> list[dict]:
        return await self.search(rtype, identifier=f"{system}|{value}")

    async def history(self, ref: str) -> list[dict]:
        resp = await self.http.get(f"{ref}/_history")
        assert resp.status_code == 200, resp.text
        return [e["resource"] for e in resp.json().get("entry") or []]

    async def aclose(self) -> None:
        await self.http.aclose()


@asynccontextmanager
async def hl7_gateway_stack(client: Client, settings: Settings) -> AsyncIterator[tuple[OrderService, int]]:
    """radflow's HL7 gateway on a free loopback port and a real worker, from `settings`."""
    service = order_service(client, settings)
    port = free_port()
    server = await Hl7Gateway(service, settings).serve(host="127.0.0.1", port=port)
    try:
        async with build_worker(client, settings, task_queue=settings.task_queue):
            yield service, port
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def fhir_reader(server: FhirTestServer) -> AsyncIterator[FhirReader]:
    reader = FhirReader(server.base_url)
    try:
        yield reader
    finally:
        await reader.aclose()
