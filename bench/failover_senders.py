"""The outside world of the failover run: an EHR/RIS feed, a modality and a clinical app, each retrying like real ones.

Every sender knows both processes of a pair and retries the same request until it gets a
definite answer: on a refused connection, a reset, a timeout or an answer that says "retry"
(HL7 AE, a DICOM failure status, HTTP 5xx) it waits a little and goes to the other process of
the pair. A permanent refusal (HL7 AR, HTTP 4xx) is not resent: it is recorded as a failure.

MPPS resends keep the SOP Instance UID (as modalities do), so a resend of an N-CREATE whose
answer was lost finds "duplicate SOP instance" and one of an N-SET "no longer updatable":
both mean the first attempt was applied.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import httpx
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityWorklistInformationFind

from radflow.domain.hl7.ack import read_ack
from radflow.infra.mllp_client import MllpClient

T = TypeVar("T")
STATION = "CT01"
GATEWAY_AET = "RADFLOW"

DUPLICATE_SOP_INSTANCE = 0x0111
PROCESSING_FAILURE = 0x0110
NO_LONGER_UPDATABLE_ERROR_ID = 0xA710


class GaveUp(Exception):
    """A request did not get a definite answer within the sender's deadline, or was refused for good."""


@dataclass
class SendStats:
    """What the senders saw: retries by reason, per protocol."""

    retries: collections.Counter[str] = field(default_factory=collections.Counter)  # "hl7 AE", "dicom conn", ...
    failovers: int = 0  # retries that went to the other process of the pair

    def retry(self, what: str) -> None:
        self.retries[what] += 1


class Pair:
    """Two endpoints; `current` sticks until a failure moves it to the other one."""

    def __init__(self, ports: list[int], stats: SendStats, deadline_s: float) -> None:
        self.ports = ports
        self.stats = stats
        self.deadline_s = deadline_s
        self.current = 0

    async def attempts(self, what: str):  # noqa: ANN201 - async generator of ports
        """Ports to try, forever alternating after each failure, until the deadline."""
        t0 = time.monotonic()
        attempt = 0
        while time.monotonic() - t0 < self.deadline_s:
            if attempt:
                self.current = 1 - self.current
                self.stats.failovers += 1
                await asyncio.sleep(min(2.0, 0.2 * attempt))
            attempt += 1
            yield self.ports[self.current]
        raise GaveUp(f"{what}: no definite answer within {self.deadline_s:.0f} s")


# ------------------------------------------------------------------ HL7 v2 over MLLP
class Hl7Sender(Pair):
    ack_timeout_s = 15.0

    async def send(self, message: bytes, what: str) -> None:
        """Until AA; the same bytes (same MSH-10) every time."""
        async for port in self.attempts(what):
            client = MllpClient("127.0.0.1", port, timeout_s=self.ack_timeout_s)
            try:
                raw = await client.send(message)
            except Exception as err:  # refused, reset, no ACK in time: resend elsewhere
                self.stats.retry("hl7 timeout" if "within" in str(err) else "hl7 conn")
                continue
            finally:
                await client.close()
            ack = read_ack(raw.decode("latin-1"))
            code = ack.code if ack else "none"
            if code == "AA":
                return
            if code == "AR":
                raise GaveUp(f"{what}: AR {ack.text if ack else ''}")
            self.stats.retry(f"hl7 {code}")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def _msh(kind: str, control: str) -> str:
    return f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|{_now()}||{kind}|{control}|P|2.4"


def _pid(mrn: str, i: int) -> str:
    return f"PID|1||{mrn}^^^GENHOSP^MR||Failover^Patient{i}||19750412|F"


def adt_a04(mrn: str, i: int, control: str) -> bytes:
    return "\r".join([_msh("ADT^A04", control), f"EVN|A04|{_now()}", _pid(mrn, i), "PV1|1|O"]).encode()


def orm_nw(mrn: str, i: int, placer: str, control: str) -> bytes:
    """No accession (radflow allocates it, as a RIS does); station OBR-21, modality OBR-24, start OBR-27.4."""
    obr = ["OBR", "1", f"{placer}^CPOE", "", "CTHEAD^CT head^L"] + [""] * 13
    obr += ["", "", "", STATION, "", "", "CT", "", "", f"^^^{_now()}^^R"]
    return "\r".join([_msh("ORM^O01", control), _pid(mrn, i), "PV1|1|O", f"ORC|NW|{placer}^CPOE", "|".join(obr)]).encode()


def oru_final(mrn: str, i: int, placer: str, control: str) -> bytes:
    """By placer number only: the reporting system does not know the accession either."""
    obr = ["OBR", "1", f"{placer}^CPOE", "", "CTHEAD^CT head^L"] + [""] * 20 + ["F"]
    return "\r".join([_msh("ORU^R01", control), f"PID|1||{mrn}^^^GENHOSP^MR", "|".join(obr),
                      f"OBX|1|TX|&GDT^Report||Failover report {i}: no acute findings.||||||F"]).encode()


# ------------------------------------------------------------------ DICOM (modality)
@dataclass
class WorklistItem:
    accession: str
    study_uid: str
    sps_id: str


def _nodelay(event) -> None:  # noqa: ANN001 - pynetdicom event
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DicomUnanswered(Exception):
    """No association, or no (or a failure) answer: resend elsewhere."""


class Modality(Pair):
    """The modality's SCU calls, blocking pynetdicom run in a thread pool of its own."""

    timeout_s = 20.0

    def __init__(self, ports: list[int], stats: SendStats, deadline_s: float, pool: ThreadPoolExecutor,
                 aet: str = STATION) -> None:
        super().__init__(ports, stats, deadline_s)
        self.pool = pool
        self.aet = aet  # the calling AE title: one per modality (the gateways cap associations per AE)

    async def _call(self, what: str, fn: Callable[[int], T]) -> T:
        loop = asyncio.get_running_loop()
        async for port in self.attempts(what):
            try:
                return await loop.run_in_executor(self.pool, fn, port)
            except DicomUnanswered as err:
                self.stats.retry(f"dicom {err}")
        raise AssertionError("unreachable")

    def _associate(self, port: int, context: str):  # noqa: ANN202 - pynetdicom Association
        ae = AE(ae_title=self.aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        ae.add_requested_context(context)
        assoc = ae.associate("127.0.0.1", port, ae_title=GATEWAY_AET, evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)])
        if not assoc.is_established:
            raise DicomUnanswered("no association")
        return assoc

    async def worklist(self, mrn: str) -> list[WorklistItem]:
        return await self._call(f"C-FIND {mrn}", lambda port: self._find(port, mrn))

    def _find(self, port: int, mrn: str) -> list[WorklistItem]:
        query = Dataset()
        query.PatientID = mrn
        query.AccessionNumber = query.StudyInstanceUID = ""
        sps = Dataset()
        sps.ScheduledStationAETitle = STATION
        sps.ScheduledProcedureStepID = ""
        query.ScheduledProcedureStepSequence = [sps]
        assoc = self._associate(port, ModalityWorklistInformationFind)
        items = []
        try:
            for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind):
                if not status or status.get("Status") not in (0xFF00, 0xFF01, 0x0000):
                    raise DicomUnanswered(f"C-FIND status {status.get('Status') if status else None}")
                if ds is not None:
                    items.append(WorklistItem(str(ds.AccessionNumber), str(ds.StudyInstanceUID),
                                              str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID)))
        finally:
            assoc.release()
        return items

    async def mpps_create(self, uid: str, attrs: Dataset) -> None:
        first = [True]

        def call(port: int) -> None:
            retry, first[0] = not first[0], False
            code = self._mpps(port, lambda a: a.send_n_create(attrs, ModalityPerformedProcedureStep, uid))[0]
            if code == 0 or (retry and code == DUPLICATE_SOP_INSTANCE):
                return
            raise DicomUnanswered(f"N-CREATE status 0x{code:04X}")

        await self._call(f"N-CREATE {uid}", call)

    async def mpps_set(self, uid: str, mods: Dataset) -> None:
        first = [True]

        def call(port: int) -> None:
            retry, first[0] = not first[0], False
            code, error_id = self._mpps(port, lambda a: a.send_n_set(mods, ModalityPerformedProcedureStep, uid))
            if code == 0 or (retry and code == PROCESSING_FAILURE and error_id == NO_LONGER_UPDATABLE_ERROR_ID):
                return
            raise DicomUnanswered(f"N-SET status 0x{code:04X}")

        await self._call(f"N-SET {uid}", call)

    def _mpps(self, port: int, send: Callable) -> tuple[int, int | None]:
        assoc = self._associate(port, ModalityPerformedProcedureStep)
        try:
            status, _ = send(assoc)
        finally:
            assoc.release()
        if not status or "Status" not in status:
            raise DicomUnanswered("no MPPS answer")
        return int(status.Status), status.get("ErrorID")

    async def store(self, images: list[Dataset]) -> None:
        await self._call(f"C-STORE {images[0].StudyInstanceUID}", lambda port: self._store(port, images))

    def _store(self, port: int, images: list[Dataset]) -> None:
        assoc = self._associate(port, str(images[0].SOPClassUID))
        try:
            for image in images:
                status = assoc.send_c_store(image)
                # An aborted association answers an empty status (no Status element).
                if not status or status.get("Status") != 0x0000:
                    raise DicomUnanswered(f"C-STORE status {status.get('Status') if status else None}")
        finally:
            assoc.release()


# ------------------------------------------------------------------ HTTP API (a clinical app)
class ApiReader(Pair):
    def __init__(self, ports: list[int], stats: SendStats, deadline_s: float, http: httpx.AsyncClient) -> None:
        super().__init__(ports, stats, deadline_s)
        self.http = http

    async def order(self, accession: str) -> dict:
        async for port in self.attempts(f"GET /orders/{accession}"):
            try:
                r = await self.http.get(f"http://127.0.0.1:{port}/orders/{accession}")
            except httpx.HTTPError:
                self.stats.retry("api conn")
                continue
            if r.status_code == 200:
                return r.json()
            if r.status_code < 500:
                raise GaveUp(f"GET /orders/{accession}: {r.status_code} {r.text[:200]}")
            self.stats.retry(f"api {r.status_code}")
        raise AssertionError("unreachable")

    async def timeline(self, accession: str) -> list[dict]:
        async for port in self.attempts(f"GET /orders/{accession}/timeline"):
            try:
                r = await self.http.get(f"http://127.0.0.1:{port}/orders/{accession}/timeline")
            except httpx.HTTPError:
                self.stats.retry("api conn")
                continue
            if r.status_code == 200:
                return r.json()["entries"]
            if r.status_code < 500:
                raise GaveUp(f"GET /orders/{accession}/timeline: {r.status_code}")
            self.stats.retry(f"api {r.status_code}")
        raise AssertionError("unreachable")
