"""The test FHIR server itself: the gaps of Medplum's MemoryRepository the launcher covers.

If one of these fails, the FHIR integration tests could pass for the wrong reason.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.fhir_server.fixture import FhirTestServer, fhir_server  # noqa: F401

pytestmark = pytest.mark.integration
SYS = "urn:test:mrn"


def patient(mrn: str, **extra: object) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": SYS, "value": mrn}], **extra}


async def create(http: httpx.AsyncClient, resource: dict, **headers: str) -> httpx.Response:
    return await http.post(resource["resourceType"], json=resource, headers=headers)


@pytest.fixture
async def http(fhir_server: FhirTestServer):
    async with httpx.AsyncClient(base_url=fhir_server.base_url + "/") as client:
        yield client


async def test_write_is_validated(http: httpx.AsyncClient) -> None:
    missing = await create(http, {"resourceType": "Encounter", "status": "planned"})  # class is 1..1
    assert missing.status_code == 400 and "Encounter.class" in missing.text
    unknown_element = await create(http, patient("x", colour="blue"))
    assert unknown_element.status_code == 400
    bad_code = await create(http, {"resourceType": "Task", "status": "in_progress", "intent": "order"})
    assert bad_code.status_code == 400 and "Task.status" in bad_code.text
    assert (await http.get("Task", params={"status": "in_progress"})).json().get("total") == 0


async def test_unsupported_search_is_an_error_not_an_empty_bundle(http: httpx.AsyncClient) -> None:
    for params in ({"nonsense": "1"}, {"_include": "Patient:link"}, {"identifier:text": "x"},
                   {"general-practitioner.name": "x"}, {"_elements": "id"}):
        resp = await http.get("Patient", params=params)
        assert resp.status_code == 400, params
        assert resp.json()["resourceType"] == "OperationOutcome"


async def test_references_match_in_every_spelling(http: httpx.AsyncClient, fhir_server: FhirTestServer) -> None:
    pid = (await create(http, patient(uuid.uuid4().hex))).json()["id"]
    enc = {"resourceType": "Encounter", "status": "unknown",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
           "subject": {"reference": f"{fhir_server.base_url}/Patient/{pid}"}}
    created = (await create(http, enc)).json()
    assert created["subject"]["reference"] == f"Patient/{pid}"  # own base made relative on write
    for params in ({"subject": f"Patient/{pid}"}, {"subject": pid}, {"subject:Patient": pid},
                   {"patient": f"http://elsewhere.example/fhir/Patient/{pid}"}):
        bundle = (await http.get("Encounter", params=params)).json()
        assert [e["resource"]["id"] for e in bundle.get("entry", [])] == [created["id"]], params
    assert (await http.get("Encounter", params={"subject": "Patient/other"})).json()["total"] == 0


async def test_conditional_create_and_versioned_update(http: httpx.AsyncClient) -> None:
    mrn = uuid.uuid4().hex
    query = {"If-None-Exist": f"identifier={SYS}|{mrn}"}
    first = await create(http, patient(mrn, gender="female"), **query)
    again = await create(http, patient(mrn, gender="male"), **query)
    assert (first.status_code, again.status_code) == (201, 200)
    rid = first.json()["id"]
    assert again.json()["id"] == rid and again.json()["gender"] == "female"
    assert first.headers["etag"] == 'W/"1"' and first.headers["location"].endswith(f"/Patient/{rid}/_history/1")
    stale = await http.put(f"Patient/{rid}", json=patient(mrn, id=rid, gender="male"), headers={"If-Match": 'W/"0"'})
    assert stale.status_code == 412
    fresh = await http.put(f"Patient/{rid}", json=patient(mrn, id=rid, gender="male"), headers={"If-Match": 'W/"1"'})
    assert fresh.status_code == 200 and fresh.json()["meta"]["versionId"] == "2"
    for _ in range(2):  # reading history must not reorder it
        versions = [e["resource"]["meta"]["versionId"] for e in (await http.get(f"Patient/{rid}/_history")).json()["entry"]]
        assert versions == ["2", "1"]
    assert (await http.get(f"Patient/{rid}/_history/1")).json()["gender"] == "female"


async def test_token_protects_the_fhir_base(tmp_path) -> None:
    server = FhirTestServer(token="t0k", data_file=tmp_path / "s.json")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url + "/") as http:
            assert (await http.get("Patient")).status_code == 401
            assert (await http.get("Patient", headers={"Authorization": "Bearer t0k"})).status_code == 200
    finally:
        server.close()


async def test_stop_and_start_keeps_the_data(tmp_path) -> None:
    server = FhirTestServer(data_file=tmp_path / "s.json")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url + "/") as http:
            rid = (await create(http, patient("keep", gender="female"))).json()["id"]
            await http.put(f"Patient/{rid}", json=patient("keep", id=rid, gender="male"))
        server.stop()
        async with httpx.AsyncClient(base_url=server.base_url + "/") as http:
            with pytest.raises(httpx.ConnectError):
                await http.get("Patient")
        await server.start()
        async with httpx.AsyncClient(base_url=server.base_url + "/") as http:
            assert (await http.get(f"Patient/{rid}")).json()["meta"]["versionId"] == "2"
            assert (await http.get("Patient", params={"identifier": f"{SYS}|keep"})).json()["total"] == 1
            nxt = await http.put(f"Patient/{rid}", json=patient("keep", id=rid), headers={"If-Match": 'W/"2"'})
            assert nxt.json()["meta"]["versionId"] == "3"
    finally:
        server.close()
