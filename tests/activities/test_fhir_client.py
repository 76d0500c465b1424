"""FhirClient against the real test FHIR server (Medplum engine over HTTP): what the server stores."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from radflow.activities.fhir_client import FhirClient, outcome_text
from radflow.domain.definitions import ErrorType
from radflow.devstack import free_port
from tests.fhir_server.fixture import FhirTestServer, fhir_server  # noqa: F401

pytestmark = pytest.mark.integration
SYSTEM = "http://radflow.example/fhir/mrn/TEST"


def a_patient(mrn: str, family: str = "Testperson") -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": mrn}],
        "name": [{"family": family, "given": ["Alex"]}],
        "gender": "other",
    }


async def stored(server: FhirTestServer, mrn: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        bundle = (await http.get(f"{server.base_url}/Patient", params={"identifier": f"{SYSTEM}|{mrn}"})).json()
    return [e["resource"] for e in bundle.get("entry") or []]


async def history(server: FhirTestServer, rtype: str, rid: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        bundle = (await http.get(f"{server.base_url}/{rtype}/{rid}/_history")).json()
    return [e["resource"] for e in bundle.get("entry") or []]


async def test_conditional_create_creates_once(fhir_server: FhirTestServer) -> None:
    mrn = uuid.uuid4().hex
    async with FhirClient(fhir_server.base_url) as fhir:
        first = await fhir.upsert(a_patient(mrn), (SYSTEM, mrn))
        again = await fhir.put_resource(a_patient(mrn), (SYSTEM, mrn))
    assert again.id == first[0] and again.version_id == first[1] == "1"
    assert again.action == "unchanged"
    found = await stored(fhir_server, mrn)
    assert [p["id"] for p in found] == [first[0]]


async def test_changed_content_is_a_versioned_update(fhir_server: FhirTestServer) -> None:
    mrn = uuid.uuid4().hex
    async with FhirClient(fhir_server.base_url) as fhir:
        rid, v1 = await fhir.upsert(a_patient(mrn, "Before"), (SYSTEM, mrn))
        rid2, v2 = await fhir.upsert(a_patient(mrn, "After"), (SYSTEM, mrn))
    assert (rid2, v1, v2) == (rid, "1", "2")
    versions = await history(fhir_server, "Patient", rid)
    assert [(v["meta"]["versionId"], v["name"][0]["family"]) for v in versions] == [("2", "After"), ("1", "Before")]
    assert len(await stored(fhir_server, mrn)) == 1


async def test_ensure_never_overwrites(fhir_server: FhirTestServer) -> None:
    mrn = uuid.uuid4().hex
    async with FhirClient(fhir_server.base_url) as fhir:
        rid, _ = await fhir.upsert(a_patient(mrn, "Owner"), (SYSTEM, mrn))
        kept = await fhir.ensure(a_patient(mrn, "Other"), (SYSTEM, mrn))
    assert (kept.id, kept.version_id, kept.action) == (rid, "1", "unchanged")
    assert (await stored(fhir_server, mrn))[0]["name"][0]["family"] == "Owner"


async def test_update_after_a_concurrent_change_rereads_and_wins(fhir_server: FhirTestServer) -> None:
    """If-Match: the first PUT meets 412 because someone else wrote in between; nothing is lost."""
    mrn = uuid.uuid4().hex
    async with FhirClient(fhir_server.base_url) as fhir:
        rid, _ = await fhir.upsert(a_patient(mrn, "Original"), (SYSTEM, mrn))

    class Interloper(httpx.AsyncHTTPTransport):
        fired = False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "PUT" and not Interloper.fired:
                Interloper.fired = True
                async with httpx.AsyncClient() as other:
                    body = {**a_patient(mrn, "Interloper"), "id": rid}
                    assert (await other.put(f"{fhir_server.base_url}/Patient/{rid}", json=body)).status_code == 200
            return await super().handle_async_request(request)

    async with FhirClient(fhir_server.base_url, transport=Interloper()) as fhir:
        done = await fhir.put_resource(a_patient(mrn, "Ours"), (SYSTEM, mrn))
    assert Interloper.fired
    assert (done.id, done.version_id, done.action) == (rid, "3", "updated")
    assert [v["name"][0]["family"] for v in await history(fhir_server, "Patient", rid)] == ["Ours", "Interloper", "Original"]


async def test_identifier_with_search_separators_still_matches_once(fhir_server: FhirTestServer) -> None:
    mrn = f"{uuid.uuid4().hex[:6]},A$1"
    async with FhirClient(fhir_server.base_url) as fhir:
        first, _ = await fhir.upsert(a_patient(mrn), (SYSTEM, mrn))
        second, version = await fhir.upsert(a_patient(mrn), (SYSTEM, mrn))
    assert (second, version) == (first, "1")


async def test_invalid_resource_is_rejected_non_retryable_with_diagnostics(fhir_server: FhirTestServer) -> None:
    bad = {"resourceType": "ServiceRequest", "identifier": [{"system": SYSTEM, "value": uuid.uuid4().hex}], "status": "active"}
    async with FhirClient(fhir_server.base_url) as fhir:
        with pytest.raises(ApplicationError) as caught:
            await fhir.upsert(bad, (SYSTEM, bad["identifier"][0]["value"]))
    err = caught.value
    assert err.type == ErrorType.DELIVERY_REJECTED and err.non_retryable
    assert "HTTP 400" in str(err) and "ServiceRequest.intent" in str(err) and "ServiceRequest.subject" in str(err)


async def test_bad_code_is_rejected(fhir_server: FhirTestServer) -> None:
    mrn = uuid.uuid4().hex
    async with FhirClient(fhir_server.base_url) as fhir:
        with pytest.raises(ApplicationError) as caught:
            await fhir.upsert({**a_patient(mrn), "gender": "M"}, (SYSTEM, mrn))
    assert caught.value.non_retryable and "Patient.gender" in str(caught.value)
    assert await stored(fhir_server, mrn) == []


async def test_connection_refused_is_retryable() -> None:
    async with FhirClient(f"http://127.0.0.1:{free_port()}/fhir/R4", timeout=2) as fhir:
        with pytest.raises(ApplicationError) as caught:
            await fhir.upsert(a_patient("X"), (SYSTEM, "X"))
    assert caught.value.type == ErrorType.DELIVERY_FAILED and not caught.value.non_retryable
    assert "ConnectError" in str(caught.value)


async def test_hanging_server_times_out_retryable(fhir_server: FhirTestServer) -> None:
    fhir_server.pause()
    try:
        async with FhirClient(fhir_server.base_url, timeout=0.5) as fhir:
            with pytest.raises(ApplicationError) as caught:
                await fhir.upsert(a_patient("Y"), (SYSTEM, "Y"))
    finally:
        fhir_server.resume()
    assert caught.value.type == ErrorType.DELIVERY_FAILED and not caught.value.non_retryable
    assert "timeout" in str(caught.value)


async def test_server_errors_are_retryable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient", "diagnostics": "db down"}]}
        return httpx.Response(503, json=outcome)

    async with FhirClient("http://fhir.invalid/R4", transport=httpx.MockTransport(answer)) as fhir:
        with pytest.raises(ApplicationError) as caught:
            await fhir.upsert(a_patient("Z"), (SYSTEM, "Z"))
    assert caught.value.type == ErrorType.DELIVERY_FAILED and not caught.value.non_retryable
    assert "HTTP 503: db down" in str(caught.value)


async def test_bearer_token(tmp_path) -> None:
    server = FhirTestServer(token="s3cret", data_file=tmp_path / "store.json")
    await server.start()
    try:
        mrn = uuid.uuid4().hex
        async with FhirClient(server.base_url) as anonymous:
            with pytest.raises(ApplicationError) as caught:
                await anonymous.upsert(a_patient(mrn), (SYSTEM, mrn))
        assert caught.value.non_retryable and "HTTP 401" in str(caught.value)
        async with FhirClient(server.base_url, token="s3cret") as fhir:
            rid, version = await fhir.upsert(a_patient(mrn), (SYSTEM, mrn))
            assert [p["id"] for p in await fhir.search_by_identifier("Patient", (SYSTEM, mrn))] == [rid]
        assert version == "1"
    finally:
        server.close()


def test_outcome_text_prefers_diagnostics_then_details() -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": "bad status", "expression": ["Task.status"]},
        {"severity": "error", "code": "invalid", "details": {"text": "Missing required property"}},
    ]}
    assert outcome_text(httpx.Response(400, json=outcome)) == "bad status (Task.status); Missing required property"
    assert outcome_text(httpx.Response(404, text="<html>nope</html>")) == "<html>nope</html>"
