"""FHIR order intake over HTTP: POST/PUT ServiceRequest -> the same order workflow as an HL7 NW."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import httpx
import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest
from temporalio.client import Client

from radflow.api.app import create_app
from radflow.domain import definitions as d
from radflow.gateways.dicom.worklist_store import WorklistStore
from radflow.devstack import DevServer, free_port
from radflow.infra.logs import KeyValueFormatter
from radflow.service.wiring import order_service
from tests.api.fhir_stack import IDENT_BASE, FhirStack, fhir_stack, serve, stack_settings  # noqa: F401 (fixture)
from tests.waiting import eventually

FHIR = {"Content-Type": "application/fhir+json"}
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def uid() -> str:
    return uuid.uuid4().hex[:8].upper()


def typed(code: str, system: str, value: str) -> dict:
    return {"type": {"coding": [{"system": V2_0203, "code": code}]}, "system": system, "value": value}


def service_request(*, accession: str | None = None, placer: str | None = None, mrn: str | None = None, **over) -> dict:
    idents = []
    if accession:
        idents.append(typed("ACSN", f"{IDENT_BASE}/accession", accession))
    if placer:
        idents.append(typed("PLAC", "urn:oid:1.2.3.999.1", placer))
    res = {
        "resourceType": "ServiceRequest",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "identifier": [{**typed("MR", f"{IDENT_BASE}/mrn/HOSP", mrn or "M" + uid()), "assigner": {"display": "HOSP"}}],
                "name": [{"family": "Fhirtest", "given": ["Jörg", "Ö"]}],
                "gender": "male",
                "birthDate": "1970-05-06",
            }
        ],
        "identifier": idents,
        "status": "active",
        "intent": "order",
        "priority": "stat",
        "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2", "display": "CT Chest"}]},
        "orderDetail": [{"coding": [{"system": DCM, "code": "CT"}]}],
        "subject": {"reference": "#pat"},
        "occurrenceDateTime": "2030-06-01T10:00:00Z",
        "performer": [{"identifier": {"system": f"{IDENT_BASE}/station", "value": "CT07"}}],
        "reasonCode": [{"text": "Persistent cough"}],
    }
    res.update(over)
    return res


def outcome(resp) -> dict:
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    OperationOutcome.model_validate(body)
    return body["issue"][0]


async def count_workflows(fhir_stack: FhirStack, accession: str) -> int:
    query = f"WorkflowId = {d.quote_visibility(d.order_workflow_id(accession))}"
    return (await fhir_stack.service.client.count_workflows(query)).count


async def test_post_creates_the_order_and_its_worklist_entry(fhir_stack: FhirStack):
    acc = "FA" + uid()
    resp = await fhir_stack.http.post("/fhir/ServiceRequest", json=service_request(accession=acc, placer="PL" + uid()), headers=FHIR)
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"].endswith(f"/fhir/ServiceRequest/{acc}")
    assert resp.headers["content-type"].startswith("application/fhir+json")
    sr = resp.json()
    ServiceRequest.model_validate(sr)
    assert sr["id"] == acc
    assert sr["status"] == "active"
    assert sr["priority"] == "stat"
    assert {"system": "urn:oid:1.2.3.999.1", "value": sr["identifier"][1]["value"]}.items() <= sr["identifier"][1].items()

    order = (await fhir_stack.http.get(f"/orders/{acc}")).json()
    assert order["status"] == "SCHEDULED"
    assert order["patient"]["family_name"] == "Fhirtest"
    assert order["patient"]["birth_date"] == "19700506"
    assert order["procedure"]["code"] == "24627-2"
    assert order["procedure"]["coding_system"] == "LN"
    assert order["schedule"]["station_ae"] == "CT07"
    assert order["schedule"]["modality"] == "CT"
    assert order["priority"] == "S"

    store = WorklistStore(fhir_stack.settings.mwl_db_path())
    entry = await eventually(lambda: _async(store.get, acc), lambda e: e is not None)
    assert entry is not None, "the FHIR order never reached the modality worklist"
    assert entry.accession == acc


async def _async(fn, *args):
    return fn(*args)


async def test_resend_is_idempotent(fhir_stack: FhirStack):
    acc = "FA" + uid()
    body = service_request(accession=acc)
    first = await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
    again = await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
    assert (first.status_code, again.status_code) == (201, 200)
    assert "location" not in again.headers
    assert again.json()["id"] == acc
    assert await count_workflows(fhir_stack, acc) == 1
    timeline = await fhir_stack.service.get_timeline(acc)
    assert [e.kind for e in timeline].count("NEW_ORDER") == 1


async def test_order_without_accession_gets_one_allocated_once(fhir_stack: FhirStack):
    placer = "PL" + uid()
    body = service_request(placer=placer)
    first = await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
    again = await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
    assert (first.status_code, again.status_code) == (201, 200), first.text
    acc = first.json()["id"]
    assert acc.startswith(fhir_stack.settings.accession_prefix)
    assert again.json()["id"] == acc
    idents = {i["type"]["coding"][0]["code"]: i for i in first.json()["identifier"] if "type" in i}
    assert idents["ACSN"]["value"] == acc
    # The placer keeps its own identifier system.
    assert (idents["PLAC"]["system"], idents["PLAC"]["value"]) == ("urn:oid:1.2.3.999.1", placer)


@pytest.mark.parametrize(
    "mutate,status,expression,code",
    [
        (lambda r: {**r, "resourceType": "Patient"}, 400, "ServiceRequest.resourceType", "structure"),
        (lambda r: {k: v for k, v in r.items() if k != "subject"}, 400, "ServiceRequest.subject", "required"),
        (lambda r: {**r, "status": "completed"}, 422, "ServiceRequest.status", "business-rule"),
        (lambda r: {**r, "status": "bogus"}, 422, "ServiceRequest.status", "value"),
        (lambda r: {**r, "intent": "proposal"}, 422, "ServiceRequest.intent", "business-rule"),
        (lambda r: {k: v for k, v in r.items() if k != "code"}, 422, "ServiceRequest.code", "required"),
        (lambda r: {**r, "subject": {"reference": "Patient/123"}}, 422, "ServiceRequest.subject", "not-found"),
        (lambda r: {**r, "subject": {"reference": "#nobody"}}, 422, "ServiceRequest.subject", "not-found"),
        (lambda r: {**r, "unknownElement": 1}, 400, "ServiceRequest.unknownElement", "structure"),
    ],
)
async def test_invalid_resources_get_an_operation_outcome(fhir_stack: FhirStack, mutate, status, expression, code):
    acc = "FA" + uid()
    resp = await fhir_stack.http.post("/fhir/ServiceRequest", json=mutate(service_request(accession=acc)), headers=FHIR)
    assert resp.status_code == status, resp.text
    issue = outcome(resp)
    assert issue["expression"] == [expression]
    assert issue["code"] == code
    assert issue["severity"] == "error"
    assert (await fhir_stack.http.get(f"/orders/{acc}")).status_code == 404  # nothing was created


async def test_unreadable_bodies(fhir_stack: FhirStack):
    bad_json = await fhir_stack.http.post("/fhir/ServiceRequest", content=b"{not json", headers=FHIR)
    assert bad_json.status_code == 400
    assert "not valid JSON" in outcome(bad_json)["diagnostics"]
    no_ids = await fhir_stack.http.post("/fhir/ServiceRequest", json=service_request(), headers=FHIR)
    assert no_ids.status_code == 422
    assert outcome(no_ids)["expression"] == ["ServiceRequest.identifier"]
    xml = await fhir_stack.http.post("/fhir/ServiceRequest", content=b"<ServiceRequest/>", headers={"Content-Type": "application/fhir+xml"})
    assert xml.status_code == 415
    assert outcome(xml)["code"] == "not-supported"


async def test_put_revoked_cancels(fhir_stack: FhirStack):
    acc = "FA" + uid()
    body = service_request(accession=acc)
    assert (await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)).status_code == 201
    resp = await fhir_stack.http.put(f"/fhir/ServiceRequest/{acc}", json={**body, "id": acc, "status": "revoked"}, headers=FHIR)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "revoked"
    assert (await fhir_stack.service.get_state(acc)).status.value == "CANCELLED"
    task = (await fhir_stack.http.get(f"/fhir/Task/{acc}")).json()
    assert task["status"] == "cancelled"
    again = await fhir_stack.http.put(f"/fhir/ServiceRequest/{acc}", json={**body, "status": "revoked"}, headers=FHIR)
    assert again.status_code == 200  # a resent cancel changes nothing
    changed = await fhir_stack.http.put(f"/fhir/ServiceRequest/{acc}", json={**body, "status": "active", "priority": "routine"}, headers=FHIR)
    assert changed.status_code == 409  # a cancelled order takes no changes
    assert outcome(changed)["code"] == "business-rule"


async def test_put_active_changes_the_order_once(fhir_stack: FhirStack):
    acc = "FA" + uid()
    body = service_request(accession=acc)
    assert (await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)).status_code == 201
    new_code = {"coding": [{"system": "http://loinc.org", "code": "36643-5", "display": "XR Chest 2 views"}]}
    update = {**body, "code": new_code, "orderDetail": [{"coding": [{"system": DCM, "code": "DX"}]}]}
    resp = await fhir_stack.http.put(f"/fhir/ServiceRequest/{acc}", json=update, headers=FHIR)
    assert resp.status_code == 200, resp.text
    assert resp.json()["code"]["coding"][0]["code"] == "36643-5"
    state = await fhir_stack.service.get_state(acc)
    assert state.order.procedure.code == "36643-5"
    assert state.order.schedule.modality == "DX"
    assert state.order.patient.name.given == "Jörg"
    same = await fhir_stack.http.put(f"/fhir/ServiceRequest/{acc}", json=update, headers=FHIR)
    assert same.status_code == 200
    kinds = [e.kind for e in await fhir_stack.service.get_timeline(acc)]
    assert kinds.count("ORDER_CHANGED") == 1
    wrong = await fhir_stack.http.put(f"/fhir/ServiceRequest/{acc}", json={**update, "id": "OTHER"}, headers=FHIR)
    assert wrong.status_code == 400
    unknown = await fhir_stack.http.put("/fhir/ServiceRequest/NOPE" + uid(), json=service_request(), headers=FHIR)
    assert unknown.status_code == 404
    assert outcome(unknown)["code"] == "not-found"
    hold = await fhir_stack.http.put(f"/fhir/ServiceRequest/{acc}", json={**update, "status": "on-hold"}, headers=FHIR)
    assert hold.status_code == 422


async def test_temporal_down_answers_503_never_success(client: Client, task_queue: str, tmp_path: Path, dev_server):
    lone = DevServer(db_file=None, port=free_port(), ui_port=None, log_file=tmp_path / "lone.log")
    await lone.start()
    down_client = await Client.connect(lone.address, data_converter=client.data_converter)
    lone.stop()
    settings = stack_settings(task_queue, tmp_path)
    settings.temporal_rpc_timeout_s = 1.0
    app = create_app(settings, order_service(down_client, settings))
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        resp = await http.post("/fhir/ServiceRequest", json=service_request(accession="FA" + uid()), headers=FHIR)
    assert resp.status_code == 503, resp.text
    assert outcome(resp)["code"] == "transient"


async def test_get_modify_put_round_trip_keeps_what_the_resource_cannot_carry(fhir_stack: FhirStack):
    acc = "FA" + uid()
    assert (await fhir_stack.http.post("/fhir/ServiceRequest", json=service_request(accession=acc), headers=FHIR)).status_code == 201
    current = (await fhir_stack.http.get(f"/fhir/ServiceRequest/{acc}")).json()
    resp = await fhir_stack.http.put(f"/fhir/ServiceRequest/{acc}", json={**current, "priority": "routine"}, headers=FHIR)
    assert resp.status_code == 200, resp.text
    assert resp.json()["priority"] == "routine"
    state = await fhir_stack.service.get_state(acc)
    assert state.order.priority == "R"
    # The facade's subject is a logical reference: demographics from the POST are kept.
    assert (state.order.patient.name.family, state.order.patient.birth_date) == ("Fhirtest", "19700506")
    assert state.order.schedule.station_ae == "CT07"
    assert state.order.reason == "Persistent cough"


async def test_contained_patient_is_validated_as_r4(fhir_stack: FhirStack):
    body = service_request(accession="FA" + uid())
    body["contained"][0]["birthDate"] = "19700506"  # HL7 style, not a FHIR date
    resp = await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
    assert resp.status_code == 400
    assert "birthDate" in outcome(resp)["diagnostics"]


async def test_intake_at_info_level_answers_201_and_logs_without_phi(fhir_stack: FhirStack, caplog: pytest.LogCaptureFixture):
    # Production runs at INFO: the record is built only then (an `extra=` key named like a
    # LogRecord attribute, e.g. "created", raised KeyError here and the POST answered 500).
    caplog.set_level(logging.INFO, logger="radflow")
    acc, mrn = "FA" + uid(), "M" + uid()
    resp = await fhir_stack.http.post("/fhir/ServiceRequest", json=service_request(accession=acc, mrn=mrn), headers=FHIR)
    assert resp.status_code == 201, resp.text
    records = [r for r in caplog.records if r.name == "radflow.api.fhir" and r.getMessage() == "fhir order intake"]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    line = KeyValueFormatter().format(records[0])
    assert f"accession={acc}" in line and "order_created=True" in line
    assert mrn not in line and "Fhirtest" not in line


async def test_resend_answers_2xx_even_when_the_order_cannot_be_read(client: Client, task_queue: str, tmp_path: Path):
    # No worker: the start is durable in Temporal, but the state query cannot be answered.
    # The order exists, so the resend must not be told "503, nothing applied".
    settings = stack_settings(task_queue, tmp_path)
    settings.temporal_rpc_timeout_s = 1.0
    service = order_service(client, settings)
    acc = "FA" + uid()
    body = service_request(accession=acc)
    async with serve(create_app(settings, service)) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        first = await http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
        again = await http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    ServiceRequest.model_validate(again.json())
    assert again.json()["id"] == acc
    query = f"WorkflowId = {d.quote_visibility(d.order_workflow_id(acc))}"
    assert (await client.count_workflows(query)).count == 1


async def test_subject_with_literal_reference_and_identifier_creates_the_order(fhir_stack: FhirStack):
    acc, mrn = "FA" + uid(), "M" + uid()
    body = service_request(accession=acc)
    del body["contained"]
    body["subject"] = {"reference": "Patient/p1", "identifier": typed("MR", f"{IDENT_BASE}/mrn/HOSP", mrn)}
    resp = await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
    assert resp.status_code == 201, resp.text
    state = await fhir_stack.service.get_state(acc)
    assert (state.order.patient.mrn, state.order.patient.issuer) == (mrn, "HOSP")
