"""Acceptance 2 (issue 4): HL7 in over MLLP, a real worker, FHIR resources out on a real FHIR server.

Temporal dev server + radflow worker + HL7 gateway on a loopback MLLP port + the Medplum
test server; MPPS and images come in through the event interface (as the DICOM gateway
would send them). Everything asserted is read back from the FHIR server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.order import EventKind, OrderEvent, SeriesInfo, StudyInfo
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


@pytest.fixture
def settings(task_queue: str, fhir_server: FhirTestServer, tmp_path) -> Settings:
    return e2e_settings(task_queue, fhir_server, tmp_path)


@pytest.fixture
async def stack(client: Client, settings: Settings) -> AsyncIterator[tuple[OrderService, int]]:
    async with hl7_gateway_stack(client, settings) as built:
        yield built


@pytest.fixture
async def fhir(fhir_server: FhirTestServer) -> AsyncIterator[FhirReader]:
    async with fhir_reader(fhir_server) as reader:
        yield reader


async def the_one(fhir: FhirReader, rtype: str, system: str, value: str, ok=lambda r: True) -> dict:
    """Waits until exactly one resource with this identifier exists and satisfies `ok`."""
    found = await eventually(lambda: fhir.by_identifier(rtype, system, value), lambda rs: len(rs) == 1 and ok(rs[0]))
    assert len(found) == 1, f"{rtype} {value}: {found}"
    assert ok(found[0]), found[0]
    return found[0]


async def test_order_study_and_reports_reach_fhir_once(stack, fhir: FhirReader, settings: Settings) -> None:
    service, port = stack
    cfg = settings.fhir_mapping()
    o = Hl7Order()

    # ADT then ORM NW over MLLP -> Patient, Encounter, ServiceRequest, Task.
    assert ack_code(await send_mllp(port, o.adt_a04())) == "AA"
    assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
    task_ok = lambda t: t["status"] == "requested"  # noqa: E731
    task = await the_one(fhir, "Task", cfg.task_system, o.accession, task_ok)
    sr = await the_one(fhir, "ServiceRequest", cfg.accession_system, o.accession)
    patient = await the_one(fhir, "Patient", cfg.mrn_system("GENHOSP"), o.mrn)
    encounter = await the_one(fhir, "Encounter", cfg.visit_system, o.visit)
    acsn = [i for i in sr["identifier"] if i.get("type", {}).get("coding", [{}])[0].get("code") == "ACSN"]
    assert [i["value"] for i in acsn] == [o.accession]
    assert sr["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert sr["encounter"] == {"reference": f"Encounter/{encounter['id']}"}
    assert task["focus"] == {"reference": f"ServiceRequest/{sr['id']}"}

    # The sender resends the NW (ACK lost): acknowledged, still one of each, no new versions.
    assert ack_code(await send_mllp(port, o.orm_nw())) == "AA"
    timeline = await service.get_timeline(o.accession)
    assert sum(1 for e in timeline if e.kind == "STEP" and e.summary.startswith("fhir:NEW_ORDER")) == 1

    # MPPS IN PROGRESS, then the study is complete -> Task in-progress, then completed + ImagingStudy.
    now = datetime.now(UTC)
    await service.send_event(o.accession, OrderEvent(kind=EventKind.PROCEDURE_STARTED, source=EventSource.DICOM,
                                                     control_id=f"mpps-{o.tag}", at=now))
    await the_one(fhir, "Task", cfg.task_system, o.accession, lambda t: t["status"] == "in-progress")
    study = StudyInfo(study_instance_uid=o.study_uid, series_count=2, instance_count=40, modality="CT", stable=True,
                      series=[SeriesInfo(series_instance_uid=f"{o.study_uid}.{n}", modality="CT", instance_count=20)
                              for n in (1, 2)])
    await service.send_event(o.accession, OrderEvent(kind=EventKind.STUDY_STABLE, source=EventSource.DICOM,
                                                     control_id=f"stable-{o.tag}", at=now, study=study))
    await the_one(fhir, "Task", cfg.task_system, o.accession, lambda t: t["status"] == "completed")
    img = await the_one(fhir, "ImagingStudy", "urn:dicom:uid", f"urn:oid:{o.study_uid}")
    endpoint = await the_one(fhir, "Endpoint", cfg.endpoint_system, cfg.endpoint_name)
    assert img["basedOn"] == [{"reference": f"ServiceRequest/{sr['id']}"}]
    assert img["endpoint"] == [{"reference": f"Endpoint/{endpoint['id']}"}]
    assert endpoint["connectionType"]["code"] == "dicom-wado-rs"
    assert img["numberOfInstances"] == 40 and len(img["series"]) == 2

    # ORU P, F, C -> one DiagnosticReport, three versions.
    for status, fhir_status, text in (("P", "preliminary", "Prelim: no bleed."), ("F", "final", "No bleed."),
                                      ("C", "corrected", "No bleed. Corrected laterality.")):
        assert ack_code(await send_mllp(port, o.oru(status, text, f"ORU{status}{o.tag}"))) == "AA"
        dr = await the_one(fhir, "DiagnosticReport", cfg.report_system, o.accession,
                           lambda r, s=fhir_status: r["status"] == s)
    assert dr["basedOn"] == [{"reference": f"ServiceRequest/{sr['id']}"}]
    assert dr["imagingStudy"] == [{"reference": f"ImagingStudy/{img['id']}"}]
    assert dr["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert dr["encounter"] == {"reference": f"Encounter/{encounter['id']}"}
    versions = await fhir.history(f"DiagnosticReport/{dr['id']}")
    assert [(v["meta"]["versionId"], v["status"]) for v in versions] == [
        ("3", "corrected"), ("2", "final"), ("1", "preliminary")]

    state = await eventually(lambda: service.get_state(o.accession), lambda s: s.status == OrderStatus.DELIVERED)
    assert state.status == OrderStatus.DELIVERED
    await the_one(fhir, "ServiceRequest", cfg.accession_system, o.accession, lambda r: r["status"] == "completed")

    # Still exactly one of everything, the first ids, and the Patient was never rewritten.
    for rtype, system, value, rid in (
        ("Patient", cfg.mrn_system("GENHOSP"), o.mrn, patient["id"]),
        ("Encounter", cfg.visit_system, o.visit, encounter["id"]),
        ("ServiceRequest", cfg.accession_system, o.accession, sr["id"]),
        ("Task", cfg.task_system, o.accession, task["id"]),
        ("ImagingStudy", "urn:dicom:uid", f"urn:oid:{o.study_uid}", img["id"]),
    ):
        assert [r["id"] for r in await fhir.by_identifier(rtype, system, value)] == [rid], rtype
    assert [v["meta"]["versionId"] for v in await fhir.history(f"Patient/{patient['id']}")] == ["1"]

    # Each delivery is on the order's timeline with the resources it wrote.
    lines = [e.summary for e in await service.get_timeline(o.accession) if e.kind == "STEP"]
    assert any(s.startswith("fhir:report delivered: corrected report: DiagnosticReport/") for s in lines), lines
    assert any(s.startswith("fhir:NEW_ORDER delivered: Patient/") for s in lines), lines
