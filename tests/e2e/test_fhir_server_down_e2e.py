"""Acceptance 3 (issue 4): the FHIR server is down when a report must go out.

The step fails for real (connection refused) until its retries are spent, the order shows
its FHIR lane waiting for an operator with the reason; the server comes back (same port, same data: the
launcher keeps its store across stop/start), an operator calls `POST /orders/{acc}/retry`
on the HTTP API, and the report is delivered without a duplicate resource.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from temporalio.client import Client

from radflow.api.app import create_app
from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus
from radflow.domain.order import EventKind, OrderEvent, Report, StudyInfo
from radflow.devstack import free_port
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.e2e.fhir_helpers import FhirReader, Hl7Order, e2e_settings
from tests.factories import make_order
from tests.fhir_server.fixture import FhirTestServer, fhir_server  # noqa: F401
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def settings(task_queue: str, fhir_server: FhirTestServer, tmp_path) -> Settings:
    return e2e_settings(task_queue, fhir_server, tmp_path, fhir_timeout_s=1.0)


@pytest.fixture
async def api_url(client: Client, settings: Settings) -> AsyncIterator[tuple[OrderService, str]]:
    """Worker + the real API app served by uvicorn on a loopback port."""
    service = order_service(client, settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, service), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn stopped before serving"
            await asyncio.sleep(0.05)
        async with build_worker(client, settings, task_queue=settings.task_queue):
            yield service, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_report_waits_for_operator_while_fhir_is_down(api_url, fhir_server: FhirTestServer, settings: Settings) -> None:
    service, base = api_url
    cfg = settings.fhir_mapping()
    o = Hl7Order()
    order = make_order(o.accession, mrn=o.mrn)
    order.study_instance_uid = o.study_uid
    await service.start_order(order, EventSource.HL7, f"NW-{o.tag}")
    await service.send_event(o.accession, OrderEvent(
        kind=EventKind.STUDY_STABLE, source=EventSource.DICOM, control_id=f"stable-{o.tag}",
        study=StudyInfo(study_instance_uid=o.study_uid, series_count=1, instance_count=12, modality="CT", stable=True)))
    fhir = FhirReader(fhir_server.base_url)
    try:
        acquired = await eventually(lambda: fhir.by_identifier("ImagingStudy", "urn:dicom:uid", f"urn:oid:{o.study_uid}"),
                                    lambda found: len(found) == 1)
        assert len(acquired) == 1
        # Stop only once every queued sync step has run, so the report is the step that meets the outage.
        # (STUDY_STABLE and the acquisition it completes are mirrored once, as ACQUISITION_CONFIRMED.)
        synced = {"fhir:NEW_ORDER", "fhir:ACQUISITION_CONFIRMED"}
        # A lane coalesces: one sync may carry several changes ("fhir:NEW_ORDER+ACQUISITION_CONFIRMED").
        steps = lambda tl: {f"{lane}:{kind}" for e in tl if e.kind == "STEP"  # noqa: E731
                            for lane, kinds in [e.summary.split(" ")[0].split(":", 1)] for kind in kinds.split("+")}
        timeline = await eventually(lambda: service.get_timeline(o.accession), lambda tl: synced <= steps(tl))
        assert synced <= steps(timeline)

        fhir_server.stop()
        final = Report(status=ReportStatus.FINAL, text="No acute findings.", observed_at=datetime.now(UTC))
        await service.send_event(o.accession, OrderEvent(kind=EventKind.REPORT, source=EventSource.HL7,
                                                         control_id=f"ORU-{o.tag}", report=final))
        stuck = await eventually(lambda: service.get_state(o.accession), lambda s: s.attention is not None, timeout_s=30)
        assert stuck.status == OrderStatus.REPORTED and stuck.lanes["fhir"].attention == stuck.attention
        assert stuck.attention is not None and stuck.attention.step == "fhir:report"
        assert "DeliveryFailed" in stuck.attention.reason and "ConnectError" in stuck.attention.reason
        assert stuck.attention.attempts == settings.step_max_attempts
        async with httpx.AsyncClient(base_url=base) as http:
            shown = (await http.get(f"/orders/{o.accession}")).json()
        assert shown["status"] == "REPORTED" and shown["flags"]["needs_attention"] and "ConnectError" in str(shown)

        await fhir_server.start()  # same port, data restored from the launcher's snapshot
        async with httpx.AsyncClient(base_url=base) as http:
            retried = await http.post(f"/orders/{o.accession}/retry", json={"note": "FHIR server back"})
        assert retried.status_code == 200, retried.text

        done = await eventually(lambda: service.get_state(o.accession), lambda s: s.status == OrderStatus.DELIVERED)
        assert done.status == OrderStatus.DELIVERED and done.attention is None
        (report,) = await fhir.by_identifier("DiagnosticReport", cfg.report_system, o.accession)
        assert report["status"] == "final" and report["meta"]["versionId"] == "1"
        for rtype, system, value in (("Patient", cfg.mrn_system("HOSP"), o.mrn),
                                     ("ServiceRequest", cfg.accession_system, o.accession),
                                     ("Task", cfg.task_system, o.accession),
                                     ("ImagingStudy", "urn:dicom:uid", f"urn:oid:{o.study_uid}")):
            assert len(await fhir.by_identifier(rtype, system, value)) == 1, rtype
        (sr,) = await fhir.by_identifier("ServiceRequest", cfg.accession_system, o.accession)
        assert sr["status"] == "completed"
        kinds = [e.kind for e in await service.get_timeline(o.accession)]
        assert kinds.index("NEEDS_ATTENTION") < kinds.index("OPERATOR") < kinds.index("DELIVERED")
    finally:
        await fhir.aclose()
        if not fhir_server.running:
            await fhir_server.start()
