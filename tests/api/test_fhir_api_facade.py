"""FHIR read facade over HTTP, built from live order state; every response parsed with R4B models."""

from __future__ import annotations

import base64
import uuid

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import EventKind, PersonName, SeriesInfo, StudyInfo
from tests.api.fhir_stack import IDENT_BASE, FhirStack, fhir_stack  # noqa: F401 (fixture)
from tests.factories import event, make_order, report
from tests.waiting import eventually
from tests.api.test_fhir_api_intake import FHIR, service_request

MODELS = {"ServiceRequest": ServiceRequest, "Task": Task, "ImagingStudy": ImagingStudy, "DiagnosticReport": DiagnosticReport}


def uid() -> str:
    return uuid.uuid4().hex[:8].upper()


async def get_bundle(fhir_stack: FhirStack, url: str, **params) -> dict:
    resp = await fhir_stack.http.get(url, params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    bundle = Bundle.model_validate(body)
    assert bundle.type == "searchset"
    for entry in body.get("entry", []):
        MODELS[entry["resource"]["resourceType"]].model_validate(entry["resource"])
        assert entry["fullUrl"] == f"{str(fhir_stack.http.base_url).rstrip('/')}/fhir/{entry['resource']['resourceType']}/{entry['resource']['id']}"
    return body


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


async def new_order(fhir_stack: FhirStack, mrn: str) -> str:
    order = make_order("FF" + uid(), mrn=mrn)
    await fhir_stack.service.start_order(order, EventSource.HL7, "nw-" + order.accession)
    return order.accession


async def test_metadata_lists_what_is_served(fhir_stack: FhirStack):
    resp = await fhir_stack.http.get("/fhir/metadata")
    assert resp.status_code == 200
    cap = resp.json()
    CapabilityStatement.model_validate(cap)
    assert cap["fhirVersion"] == "4.0.1"
    served = {r["type"]: r for r in cap["rest"][0]["resource"]}
    assert set(served) == {"ServiceRequest", "Task", "ImagingStudy", "DiagnosticReport", "Endpoint"}
    assert {i["code"] for i in served["ServiceRequest"]["interaction"]} == {"read", "search-type", "create", "update"}
    assert {p["name"] for p in served["ImagingStudy"]["searchParam"]} == {"basedon", "_count"}
    assert {p["name"] for p in served["Task"]["searchParam"]} == {"based-on", "_count"}


async def test_full_order_life_through_the_facade(fhir_stack: FhirStack):
    http, service = fhir_stack.http, fhir_stack.service
    acc = await new_order(fhir_stack, "M" + uid())
    sr_ref = f"ServiceRequest/{acc}"

    sr = (await http.get(f"/fhir/ServiceRequest/{acc}")).json()
    ServiceRequest.model_validate(sr)
    assert (sr["id"], sr["status"]) == (acc, "active")
    assert (await get_bundle(fhir_stack, "/fhir/ImagingStudy", basedon=sr_ref))["total"] == 0
    assert (await get_bundle(fhir_stack, "/fhir/DiagnosticReport", **{"based-on": sr_ref}))["total"] == 0
    tasks = await get_bundle(fhir_stack, "/fhir/Task", **{"based-on": sr_ref})
    assert tasks["total"] == 1 and tasks["entry"][0]["resource"]["status"] == "requested"

    await service.send_event(acc, event(EventKind.PROCEDURE_STARTED, source=EventSource.DICOM))
    assert (await http.get(f"/fhir/Task/{acc}")).json()["status"] == "in-progress"

    study = StudyInfo(
        study_instance_uid="1.2.826.0.1.3680043.2.1125.7." + str(uuid.uuid4().int % 10**8),
        series_count=1,
        instance_count=12,
        modality="CT",
        series=[SeriesInfo(series_instance_uid="1.2.826.0.1.3680043.2.1125.8.1", modality="CT", instance_count=12)],
    )
    await service.send_event(acc, event(EventKind.STUDY_STABLE, source=EventSource.DICOM, study=study))
    acquired = await eventually(lambda: service.get_state(acc), lambda s: s.status.value == "ACQUIRED")
    assert acquired.status.value == "ACQUIRED"

    studies = await get_bundle(fhir_stack, "/fhir/ImagingStudy", basedon=sr_ref)
    assert studies["total"] == 1
    img = studies["entry"][0]["resource"]
    assert img["id"] == acc
    assert img["status"] == "available"
    assert img["identifier"][0] == {"system": "urn:dicom:uid", "value": f"urn:oid:{study.study_instance_uid}"}
    assert img["basedOn"] == [{"reference": sr_ref}]
    assert img["numberOfInstances"] == 12
    assert img["series"][0]["uid"] == "1.2.826.0.1.3680043.2.1125.8.1"
    assert img["endpoint"] == [{"reference": "Endpoint/radflow-dicomweb"}]
    ep = (await http.get("/fhir/Endpoint/radflow-dicomweb")).json()
    Endpoint.model_validate(ep)
    assert ep["address"] == "https://pacs.test/dicom-web"
    assert ep["connectionType"]["code"] == "dicom-wado-rs"
    assert (await http.get(f"/fhir/Task/{acc}")).json()["status"] == "completed"

    await service.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.PRELIMINARY, "Prelim: nodule.")))
    dr = (await get_bundle(fhir_stack, "/fhir/DiagnosticReport", **{"based-on": sr_ref}))["entry"][0]["resource"]
    assert dr["status"] == "preliminary"
    assert (await http.get(f"/fhir/ServiceRequest/{acc}")).json()["status"] == "active"

    final = report(ReportStatus.FINAL, "Final: 4 mm nodule, benign appearance.")
    final.interpreter = PersonName(family="Reader", given="Rae")
    await service.send_event(acc, event(EventKind.REPORT, report=final))
    dr = (await get_bundle(fhir_stack, "/fhir/DiagnosticReport", **{"based-on": sr_ref}))["entry"][0]["resource"]
    assert dr["id"] == acc
    assert dr["status"] == "final"
    assert dr["basedOn"] == [{"reference": sr_ref}]
    assert dr["imagingStudy"] == [{"reference": f"ImagingStudy/{acc}"}]
    assert dr["resultsInterpreter"] == [{"type": "Practitioner", "display": "Rae Reader"}]
    assert base64.b64decode(dr["presentedForm"][0]["data"]).decode() == "Final: 4 mm nodule, benign appearance."
    assert (await http.get(f"/fhir/ServiceRequest/{acc}")).json()["status"] == "completed"

    await service.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.CORRECTED, "Corrected: 5 mm nodule.")))
    dr = (await http.get(f"/fhir/DiagnosticReport/{acc}")).json()
    DiagnosticReport.model_validate(dr)
    assert dr["status"] == "corrected"
    assert dr["conclusion"] == "Corrected: 5 mm nodule."


async def test_service_request_searches(fhir_stack: FhirStack):
    http, service = fhir_stack.http, fhir_stack.service
    mrn = "M" + uid()
    first, second = await new_order(fhir_stack, mrn), await new_order(fhir_stack, mrn)
    other = await new_order(fhir_stack, "M" + uid())

    by_acc = await get_bundle(fhir_stack, "/fhir/ServiceRequest", identifier=f"{IDENT_BASE}/accession|{first}")
    assert (by_acc["total"], ids(by_acc)) == (1, [first])
    any_system = await get_bundle(fhir_stack, "/fhir/ServiceRequest", identifier=second)
    assert ids(any_system) == [second]
    wrong_system = await get_bundle(fhir_stack, "/fhir/ServiceRequest", identifier=f"urn:other|{first}")
    assert wrong_system["total"] == 0
    either = await get_bundle(fhir_stack, "/fhir/ServiceRequest", identifier=f"{first},{other}")
    assert sorted(ids(either)) == sorted([first, other])

    placer = (await service.get_state(first)).order.placer_number
    by_placer = await eventually(
        lambda: get_bundle(fhir_stack, "/fhir/ServiceRequest", identifier=f"{IDENT_BASE}/placer|{placer}"), lambda b: b["total"] == 1
    )
    assert ids(by_placer) == [first]

    # Patient searches read visibility (eventually consistent), then filter exactly.
    by_patient = await eventually(lambda: get_bundle(fhir_stack, "/fhir/ServiceRequest", patient=mrn), lambda b: b["total"] == 2)
    assert sorted(ids(by_patient)) == sorted([first, second])
    assert sorted(ids(await get_bundle(fhir_stack, "/fhir/ServiceRequest", subject=f"Patient/{mrn}"))) == sorted([first, second])
    by_mrn_token = await get_bundle(fhir_stack, "/fhir/ServiceRequest", **{"patient:identifier": f"{IDENT_BASE}/mrn/HOSP|{mrn}"})
    assert by_mrn_token["total"] == 2

    await service.send_event(second, event(EventKind.CANCEL, source=EventSource.API))
    revoked = await get_bundle(fhir_stack, "/fhir/ServiceRequest", patient=mrn, status="revoked")
    assert ids(revoked) == [second]
    active = await get_bundle(fhir_stack, "/fhir/ServiceRequest", patient=mrn, status="active,completed")
    assert ids(active) == [first]
    paged = await get_bundle(fhir_stack, "/fhir/ServiceRequest", patient=mrn, _count="1")
    assert (paged["total"], len(paged["entry"])) == (2, 1)


async def test_errors_are_operation_outcomes(fhir_stack: FhirStack):
    http = fhir_stack.http
    cases = [
        ("/fhir/ServiceRequest/NOPE" + uid(), {}, 404, "not-found"),
        ("/fhir/Task/NOPE" + uid(), {}, 404, "not-found"),
        ("/fhir/Endpoint/other", {}, 404, "not-found"),
        ("/fhir/ServiceRequest", {"code": "CT"}, 400, "not-supported"),
        ("/fhir/Task", {"owner": "x", "based-on": "ServiceRequest/1"}, 400, "not-supported"),
        ("/fhir/Task", {}, 400, "required"),
        ("/fhir/ImagingStudy", {"based-on": "ServiceRequest/1"}, 400, "not-supported"),  # R4 spells it basedon
        ("/fhir/DiagnosticReport", {"based-on": "ServiceRequest/1", "_count": "x"}, 400, "value"),
    ]
    for url, params, status, code in cases:
        resp = await http.get(url, params=params)
        assert resp.status_code == status, (url, params, resp.text)
        assert resp.headers["content-type"].startswith("application/fhir+json")
        body = resp.json()
        OperationOutcome.model_validate(body)
        assert body["issue"][0]["code"] == code, (url, body)
    unsupported = (await http.get("/fhir/ServiceRequest", params={"code": "CT", "performer": "x"})).json()
    assert "code, performer" in unsupported["issue"][0]["diagnostics"]
    acc = await new_order(fhir_stack, "M" + uid())
    no_report = await http.get(f"/fhir/DiagnosticReport/{acc}")
    assert no_report.status_code == 404
    other_type = await get_bundle(fhir_stack, "/fhir/Task", **{"based-on": f"Patient/{acc}"})
    assert other_type["total"] == 0


async def test_searches_beyond_the_limit_are_refused_not_truncated(fhir_stack: FhirStack):
    mrn = "M" + uid()
    accs = [await new_order(fhir_stack, mrn) for _ in range(3)]
    full = await eventually(lambda: get_bundle(fhir_stack, "/fhir/ServiceRequest", patient=mrn), lambda b: b["total"] == 3)
    assert sorted(ids(full)) == sorted(accs)
    fhir_stack.settings.fhir_search_max = 2
    resp = await fhir_stack.http.get("/fhir/ServiceRequest", params={"patient": mrn})
    assert resp.status_code == 400
    body = resp.json()
    OperationOutcome.model_validate(body)
    assert body["issue"][0]["code"] == "too-costly"


async def test_accession_that_is_not_a_fhir_id_is_served_under_an_escaped_id(fhir_stack: FhirStack):
    acc = "FON_" + uuid.uuid4().hex[:8]
    body = service_request(accession=acc)
    created = await fhir_stack.http.post("/fhir/ServiceRequest", json=body, headers=FHIR)
    assert created.status_code == 201, created.text
    rid = acc.replace("_", ".5F")
    assert created.json()["id"] == rid and created.headers["location"].endswith(f"/ServiceRequest/{rid}")
    ServiceRequest.model_validate(created.json())  # R4 id pattern [A-Za-z0-9\-.]{1,64}
    read = await fhir_stack.http.get(f"/fhir/ServiceRequest/{rid}")
    assert read.status_code == 200 and read.json()["identifier"][0]["value"] == acc
    task = (await fhir_stack.http.get(f"/fhir/Task/{rid}")).json()
    assert task["id"] == rid and task["basedOn"][0]["reference"] == f"ServiceRequest/{rid}"
    found = (await fhir_stack.http.get("/fhir/Task", params={"based-on": f"ServiceRequest/{rid}"})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [rid]
    assert (await fhir_stack.http.get(f"/fhir/ServiceRequest/{acc}")).status_code == 404  # not an id we issue
    put = await fhir_stack.http.put(f"/fhir/ServiceRequest/{rid}", json={**read.json(), "priority": "routine"}, headers=FHIR)
    assert put.status_code == 200, put.text
