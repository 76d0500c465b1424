"""FhirDelivery activities against the real test FHIR server, driven with hand-built snapshots."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from radflow.activities.fhir_delivery import FhirDelivery
from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.order import OrderState, PatientKey, Procedure, StepRequest, Visit
from radflow.infra.settings import Settings
from tests.factories import make_order, report, stable_study
from tests.fhir_server.fixture import FhirTestServer, fhir_server  # noqa: F401

pytestmark = pytest.mark.integration
NOW = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)


def a_state(**changes: object) -> OrderState:
    order = make_order(mrn=f"M{datetime.now().timestamp()}")
    order.visit = Visit(patient_class="O", visit_number="V" + order.accession)
    state = OrderState(order=order, status=OrderStatus.SCHEDULED, created_at=NOW, updated_at=NOW)
    return state.model_copy(update=changes)


def request(state: OrderState, milestone: str) -> StepRequest:
    return StepRequest(consumer="fhir", milestone=milestone, accession=state.order.accession, state=state)


async def search(server: FhirTestServer, rtype: str, **params: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        bundle = (await http.get(f"{server.base_url}/{rtype}", params=params)).json()
    assert bundle["resourceType"] == "Bundle", bundle
    return [e["resource"] for e in bundle.get("entry") or []]


async def by_accession(server: FhirTestServer, rtype: str, state: OrderState, delivery: FhirDelivery) -> list[dict]:
    return await search(server, rtype, identifier=f"{delivery.mapping.accession_system}|{state.order.accession}")


@pytest.fixture
def delivery(fhir_server: FhirTestServer) -> FhirDelivery:
    return FhirDelivery.from_settings(Settings(fhir_base_url=fhir_server.base_url, _env_file=None))


async def test_not_configured_is_said_not_faked() -> None:
    idle = FhirDelivery.from_settings(Settings(fhir_base_url="", _env_file=None))
    env = ActivityEnvironment()
    state = a_state()
    for result in (await env.run(idle.sync_fhir, request(state, "NEW_ORDER")),
                   await env.run(idle.deliver_report_fhir, request(state, "report"))):
        assert result.outcome == "not_configured" and "RADFLOW_FHIR_BASE_URL" in result.detail


async def test_order_sync_links_resources_and_repeats_without_new_versions(
        fhir_server: FhirTestServer, delivery: FhirDelivery) -> None:
    env = ActivityEnvironment()
    state = a_state()
    first = await env.run(delivery.sync_fhir, request(state, "NEW_ORDER"))
    assert first.outcome == "delivered"
    assert [p.split("/")[0] for p in first.detail.split("; ")] == ["Patient", "Encounter", "ServiceRequest", "Task"]
    (sr,) = await search(fhir_server, "ServiceRequest", identifier=f"{delivery.mapping.accession_system}|{state.order.accession}")
    (task,) = await search(fhir_server, "Task", **{"based-on": f"ServiceRequest/{sr['id']}"})
    (pat,) = await search(fhir_server, "Patient", _id=sr["subject"]["reference"].split("/")[1])
    assert pat["identifier"][0]["value"] == state.order.patient.mrn
    assert task["focus"]["reference"] == f"ServiceRequest/{sr['id']}" and task["status"] == "requested"
    assert sr["encounter"]["reference"].startswith("Encounter/")

    again = await env.run(delivery.sync_fhir, request(state, "NEW_ORDER"))
    assert again.detail == "unchanged: Patient, Encounter, ServiceRequest, Task"
    assert [r["meta"]["versionId"] for r in await search(fhir_server, "Task", _id=task["id"])] == ["1"]
    await delivery.aclose()


async def test_patient_is_rewritten_only_on_patient_milestones(fhir_server: FhirTestServer, delivery: FhirDelivery) -> None:
    env = ActivityEnvironment()
    state = a_state()
    await env.run(delivery.sync_fhir, request(state, "NEW_ORDER"))
    renamed = state.model_copy(deep=True)
    renamed.order.patient.name.family = "Renamed"
    renamed.status = OrderStatus.IN_PROGRESS
    renamed.started_at = NOW
    status_only = await env.run(delivery.sync_fhir, request(renamed, "PROCEDURE_STARTED"))
    assert "Task/" in status_only.detail and "Patient/" not in status_only.detail
    mrn = f"{delivery.mapping.mrn_system('HOSP')}|{state.order.patient.mrn}"
    assert (await search(fhir_server, "Patient", identifier=mrn))[0]["name"][0]["family"] == "Testperson"
    (task,) = await search(fhir_server, "Task", identifier=f"{delivery.mapping.task_system}|{state.order.accession}")
    assert task["status"] == "in-progress" and task["meta"]["versionId"] == "2"

    adt = await env.run(delivery.sync_fhir, request(renamed, "PATIENT_UPDATED"))
    assert "Patient/" in adt.detail
    assert (await search(fhir_server, "Patient", identifier=mrn))[0]["name"][0]["family"] == "Renamed"
    await delivery.aclose()


async def test_report_versions_one_diagnostic_report(fhir_server: FhirTestServer, delivery: FhirDelivery) -> None:
    env = ActivityEnvironment()
    study = stable_study(uid=f"1.2.826.0.1.{int(datetime.now().timestamp() * 1000)}")
    state = a_state(status=OrderStatus.ACQUIRED, study=study, started_at=NOW, acquired_at=NOW)
    synced = await env.run(delivery.sync_fhir, request(state, "ACQUISITION_CONFIRMED"))
    assert "ImagingStudy/" in synced.detail and "Endpoint/" in synced.detail
    for version, status in enumerate((ReportStatus.PRELIMINARY, ReportStatus.FINAL, ReportStatus.CORRECTED), 1):
        state = state.model_copy(update={"report": report(status).model_copy(update={"version": version}),
                                         "status": OrderStatus.REPORTED})
        result = await env.run(delivery.deliver_report_fhir, request(state, "report"))
        assert result.detail.startswith(f"{status.value} report: DiagnosticReport/")
    (dr,) = await by_accession(fhir_server, "DiagnosticReport", state, delivery)
    (sr,) = await by_accession(fhir_server, "ServiceRequest", state, delivery)
    (img,) = await by_accession(fhir_server, "ImagingStudy", state, delivery)
    assert dr["status"] == "corrected" and dr["meta"]["versionId"] == "3"
    assert dr["basedOn"] == [{"reference": f"ServiceRequest/{sr['id']}"}]
    assert dr["imagingStudy"] == [{"reference": f"ImagingStudy/{img['id']}"}]
    assert sr["status"] == "completed"
    await delivery.aclose()


async def test_order_without_procedure_code_is_accepted_by_a_validating_server(
        fhir_server: FhirTestServer, delivery: FhirDelivery) -> None:
    # prr-1: orderDetail (the modality) needs ServiceRequest.code; the server refused it (400).
    state = a_state()
    state.order.procedure = Procedure()
    result = await ActivityEnvironment().run(delivery.sync_fhir, request(state, "NEW_ORDER"))
    assert result.outcome == "delivered", result.detail
    (sr,) = await by_accession(fhir_server, "ServiceRequest", state, delivery)
    assert sr["code"] == {"text": "CT imaging procedure (not specified by the placer)"}
    assert sr["orderDetail"][0]["coding"][0]["code"] == "CT"
    await delivery.aclose()


async def test_merge_retires_the_old_patient_with_a_replaced_by_link(fhir_server: FhirTestServer, delivery: FhirDelivery) -> None:
    env = ActivityEnvironment()
    before = a_state()
    old_mrn = before.order.patient.mrn
    await env.run(delivery.sync_fhir, request(before, "NEW_ORDER"))
    merged = before.model_copy(deep=True)
    merged.order.patient.mrn = old_mrn + "-SURV"
    merged.previous_patients = [PatientKey(mrn=old_mrn, issuer=before.order.patient.issuer)]
    result = await env.run(delivery.sync_fhir, request(merged, "PATIENT_MERGED"))
    assert result.outcome == "delivered", result.detail
    mrn_system = delivery.mapping.mrn_system(before.order.patient.issuer)
    (old,) = await search(fhir_server, "Patient", identifier=f"{mrn_system}|{old_mrn}")
    (survivor,) = await search(fhir_server, "Patient", identifier=f"{mrn_system}|{old_mrn}-SURV")
    assert old["active"] is False
    assert old["link"] == [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
    assert old["name"][0]["family"] == "Testperson"  # what the server held is kept
    (sr,) = await by_accession(fhir_server, "ServiceRequest", merged, delivery)
    assert sr["subject"]["reference"] == f"Patient/{survivor['id']}"
    again = await env.run(delivery.sync_fhir, request(merged, "PATIENT_MERGED"))
    assert "Patient/" not in again.detail.split("unchanged:")[0], again.detail  # nothing rewritten
    assert [p["meta"]["versionId"] for p in await search(fhir_server, "Patient", _id=old["id"])] == ["2"]
    await delivery.aclose()
