"""Issues 7.6 and 7.8 end to end: ORU with an embedded PDF / CDA over MLLP -> Temporal -> EHR (MLLP) and FHIR.

Real parts only: Temporal dev server, radflow worker, the HL7 gateway on a loopback MLLP
port, an MLLP receiver standing in for the EHR, the Medplum-based FHIR test server (which
validates every resource written). The document bytes must reach both consumers, and
never the workflow history.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.domain.hl7.decode import escape
from radflow.domain.hl7.mapping import map_message
from radflow.domain.hl7.parse import parse_message
from radflow.domain.order import EventKind, OrderEvent, SeriesInfo, StudyInfo
from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.gateways.mllp import serve_mllp
from radflow.devstack import free_port
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.e2e.fhir_helpers import (
    FhirReader,
    Hl7Order,
    ack_code,
    e2e_settings,
    fhir_reader,
    hl7_gateway_stack,
    send_mllp,
)
from tests.fhir_server.fixture import FhirTestServer, fhir_server  # noqa: F401
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPORTS = Path(__file__).resolve().parent.parent / "data" / "reports"
PDF = (REPORTS / "report.pdf").read_bytes()
CDA = (REPORTS / "report_cda.xml").read_text(encoding="utf-8")
STUDY_ROW = "OBX|{n}|ST|113014^Study Instance UID^DCM||{uid}||||||F"


class EhrSink:
    """The EHR's MLLP receiver: keeps every ORU, answers AA."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle(self, payload: bytes) -> bytes:
        text = payload.decode("utf-8")
        self.received.append(text)
        return build_ack(AckHeader.from_text(text), AckCode.AA, application="EHR").encode()


@pytest.fixture
async def ehr() -> AsyncIterator[EhrSink]:
    sink = EhrSink()
    server = await serve_mllp(sink.handle, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    yield sink
    server.close()


@pytest.fixture
def settings(task_queue: str, fhir_server: FhirTestServer, tmp_path: Path, ehr: EhrSink) -> Settings:
    return e2e_settings(task_queue, fhir_server, tmp_path, report_consumers=["hl7", "fhir"],
                        ehr_mllp_host="127.0.0.1", ehr_mllp_port=ehr.port)  # type: ignore[attr-defined]


@pytest.fixture
async def stack(client: Client, settings: Settings) -> AsyncIterator[tuple[OrderService, int]]:
    async with hl7_gateway_stack(client, settings) as built:
        yield built


@pytest.fixture
async def fhir(fhir_server: FhirTestServer) -> AsyncIterator[FhirReader]:
    async with fhir_reader(fhir_server) as reader:
        yield reader


def oru(o: Hl7Order, control: str, *obx: str) -> str:
    lines = o.oru("F", "x", control).split("\r")[:-1]  # header, PID, OBR of the order; our own OBX rows
    return "\r".join(lines + [row.replace("{n}", str(i)) for i, row in enumerate(obx, start=1)])


async def delivered(service, accession: str):
    return await eventually(lambda: service.get_state(accession), lambda s: s.status == OrderStatus.DELIVERED, timeout_s=60)


async def test_pdf_report_reaches_ehr_and_fhir_and_stays_out_of_history(stack, ehr: EhrSink, fhir: FhirReader,
                                                                        settings: Settings, client: Client) -> None:
    service, port = stack
    o = Hl7Order()
    assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
    b64 = base64.b64encode(PDF).decode()
    message = oru(o, f"PDF{o.tag}", STUDY_ROW.replace("{uid}", o.study_uid),
                  f"OBX|{{n}}|ED|18748-4^Report PDF^LN||^AP^PDF^Base64^{b64}||||||F")
    assert ack_code(await send_mllp(port, message)) == "AA"

    state = await delivered(service, o.accession)
    assert state.status == OrderStatus.DELIVERED, state.timeline[-3:]
    sha = hashlib.sha256(PDF).hexdigest()
    (att,) = state.report.attachments
    assert (att.sha256, att.content_type, att.size) == (sha, "application/pdf", len(PDF))
    assert [r.uid for r in state.report.imaging_references] == [o.study_uid] and state.report.text == ""
    # Stored durably by the gateway, in the configured place; the history holds the reference only.
    assert (settings.attachments_path() / sha[:2] / sha).read_bytes() == PDF
    history = await client.get_workflow_handle(f"order-{o.accession}").fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)  # payloads as stored (JSON bytes)
    assert sha.encode() in raw
    assert b64[:200].encode() not in raw and PDF[:200] not in raw

    # The EHR got the PDF as OBX ED, byte for byte.
    (out,) = ehr.received
    (cmd,) = map_message(parse_message(out))
    assert cmd.documents == {sha: PDF}
    assert any(s.startswith("OBX|") and "|ED|" in s and "^AP^PDF^Base64^" in s for s in out.split("\r"))

    # The FHIR server accepted (validated) a DiagnosticReport with the PDF as presentedForm.
    cfg = settings.fhir_mapping()
    found = await eventually(lambda: fhir.by_identifier("DiagnosticReport", cfg.report_system, o.accession),
                             lambda rs: len(rs) == 1 and rs[0]["status"] == "final")
    (form,) = found[0]["presentedForm"]
    assert form["contentType"] == "application/pdf" and form["size"] == len(PDF)
    assert base64.b64decode(form["data"]) == PDF
    assert form["hash"] == base64.b64encode(hashlib.sha1(PDF).digest()).decode()
    study = await fhir.by_identifier("ImagingStudy", "urn:dicom:uid", f"urn:oid:{o.study_uid}")
    assert found[0]["imagingStudy"] == [{"reference": f"ImagingStudy/{study[0]['id']}"}]


async def test_cda_with_escaped_delimiters_is_delivered_intact(stack, ehr: EhrSink, fhir: FhirReader,
                                                              settings: Settings) -> None:
    service, port = stack
    o = Hl7Order()
    assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
    message = oru(o, f"CDA{o.tag}", "OBX|{n}|TX|&GDT^Report||See the CDA document.||||||F",
                  f"OBX|{{n}}|ED|18748-4^CDA report^LN||^TEXT^XML^A^{escape(CDA)}||||||F")
    assert ack_code(await send_mllp(port, message)) == "AA"
    state = await delivered(service, o.accession)
    assert state.status == OrderStatus.DELIVERED, state.timeline[-3:]
    (cmd,) = map_message(parse_message(ehr.received[0]))
    assert list(cmd.documents.values()) == [CDA.encode()]
    cfg = settings.fhir_mapping()
    (report,) = await fhir.by_identifier("DiagnosticReport", cfg.report_system, o.accession)
    text_form, cda_form = report["presentedForm"]
    assert base64.b64decode(cda_form["data"]).decode() == CDA and cda_form["contentType"] == "text/xml"


async def test_final_report_with_only_uid_rows_is_refused_ae_and_not_delivered(stack, ehr: EhrSink) -> None:
    service, port = stack
    o = Hl7Order()
    assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
    ack = await send_mllp(port, oru(o, f"UID{o.tag}", STUDY_ROW.replace("{uid}", o.study_uid)))
    assert ack_code(ack) == "AE" and "neither text nor a document" in ack
    state = await service.get_state(o.accession)
    assert state.report is None and state.status == OrderStatus.SCHEDULED
    # On the timeline; not necessarily last: the NW's own sync steps may complete after the refusal.
    assert [e for e in state.timeline if e.exception and "neither text nor a document" in e.summary]
    assert ehr.received == []


async def test_two_studies_of_one_order_are_two_imaging_studies_linked_from_the_report(stack, fhir: FhirReader,
                                                                                       settings: Settings) -> None:
    """Issue 7.8: one ImagingStudy per study of the order, both referenced by the DiagnosticReport."""
    service, port = stack
    o = Hl7Order()
    assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
    second_uid = o.study_uid + ".2"
    now = datetime.now(UTC)
    for uid, count in ((o.study_uid, 4), (second_uid, 2)):
        study = StudyInfo(study_instance_uid=uid, patient_id=o.mrn, series_count=1, instance_count=count, modality="CT",
                          stable=True, series=[SeriesInfo(series_instance_uid=uid + ".1", modality="CT", instance_count=count)])
        await service.send_event(o.accession, OrderEvent(kind=EventKind.STUDY_STABLE, source=EventSource.DICOM,
                                                         control_id=f"{uid}:stable:{count}", at=now, study=study))
    assert ack_code(await send_mllp(port, o.oru("F", "No acute findings.", f"ORU{o.tag}"))) == "AA"
    state = await delivered(service, o.accession)
    assert state.status == OrderStatus.DELIVERED, state.timeline[-3:]
    assert [s.study_instance_uid for s in state.studies()] == [o.study_uid, second_uid]

    cfg = settings.fhir_mapping()
    ids = []
    for uid, count in ((o.study_uid, 4), (second_uid, 2)):
        (img,) = await fhir.by_identifier("ImagingStudy", "urn:dicom:uid", f"urn:oid:{uid}")
        assert img["numberOfInstances"] == count and img["series"][0]["uid"] == uid + ".1"
        ids.append(img["id"])
    (report,) = await fhir.by_identifier("DiagnosticReport", cfg.report_system, o.accession)
    assert report["imagingStudy"] == [{"reference": f"ImagingStudy/{i}"} for i in ids]


class FullDisk:
    """An attachment store that cannot write (disk full, volume gone)."""

    def put(self, data: bytes) -> str:
        raise OSError(28, "No space left on device")

    def get(self, sha256: str) -> bytes:
        raise AssertionError("nothing was stored")


async def test_document_not_stored_means_ae_and_nothing_applied(stack, client: Client, settings: Settings,
                                                                ehr: EhrSink) -> None:
    """The document is written before the event reaches Temporal: a failed write answers AE, and the
    order never hears of a report whose document could not be kept."""
    service, port = stack
    o = Hl7Order()
    assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
    gateway_port = free_port()
    server = await Hl7Gateway(service, settings, attachments=FullDisk()).serve(host="127.0.0.1", port=gateway_port)
    try:
        b64 = base64.b64encode(PDF).decode()
        ack = await send_mllp(gateway_port, oru(o, f"FULL{o.tag}", f"OBX|{{n}}|ED|18748-4^Report PDF^LN||^AP^PDF^Base64^{b64}||||||F"))
    finally:
        server.close()
        await server.wait_closed()
    assert ack_code(ack) == "AE" and "could not be stored" in ack
    state = await service.get_state(o.accession)
    assert state.report is None and not any(e.kind == "REPORT" for e in state.timeline)
    assert ehr.received == []


async def test_a_500_kb_pdf_travels_whole(stack, ehr: EhrSink, fhir: FhirReader, settings: Settings) -> None:
    """A realistically sized document (one MLLP frame, parsed off the event loop) reaches both consumers."""
    service, port = stack
    o = Hl7Order()
    assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
    big = PDF[:-6] + bytes(range(256)) * 2000 + b"%%EOF\n"  # ~512 KB; binary content after the header
    assert 500_000 < len(big) < 700_000
    b64 = base64.b64encode(big).decode()
    assert ack_code(await send_mllp(port, oru(o, f"BIG{o.tag}", f"OBX|{{n}}|ED|18748-4^Report PDF^LN||^AP^PDF^Base64^{b64}||||||F"))) == "AA"
    state = await delivered(service, o.accession)
    assert state.status == OrderStatus.DELIVERED, state.timeline[-3:]
    (cmd,) = map_message(parse_message(ehr.received[0]))
    assert list(cmd.documents.values()) == [big]
    (report,) = await fhir.by_identifier("DiagnosticReport", settings.fhir_mapping().report_system, o.accession)
    assert base64.b64decode(report["presentedForm"][0]["data"]) == big
