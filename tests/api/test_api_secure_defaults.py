"""Secure defaults of the API: JSON-only state changes (no cross-site form posts), CORS off
unless configured, tokens and keys never in logs or error answers.

The app here has no Temporal connection: a request the guard lets through reaches its
handler and gets 503; a refused one never gets that far.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from radflow.api.app import create_app
from radflow.infra.settings import Settings

SECRET = "op-secret-abcdefghijklmnop"


def client(tmp_path: Path, **overrides: object) -> httpx.AsyncClient:
    app = create_app(Settings(data_dir=tmp_path, temporal_address="127.0.0.1:1", **overrides))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test")


@pytest.mark.parametrize("headers,content", [
    ({}, b""),  # curl -X POST .../cancel: no body, no headers
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"reason=x"),  # an HTML form on any site
    ({"Content-Type": "text/plain"}, b'{"reason": "x"}'),  # fetch(..., {mode: "no-cors"}) with a JSON-looking body
    ({"Content-Type": "multipart/form-data; boundary=b"}, b"--b--"),
    ({"Content-Type": "application/json"}, b""),  # JSON type, no body
])
@pytest.mark.parametrize("auth", ["off", "on"])
async def test_state_changes_need_a_json_body(tmp_path: Path, headers: dict, content: bytes, auth: str) -> None:
    extra = {"api_keys": SecretStr(f"op:operator+intake:{SECRET}")} if auth == "on" else {}
    token = {"Authorization": f"Bearer {SECRET}"} if auth == "on" else {}
    async with client(tmp_path, **extra) as http:
        refused = await http.post("/orders/ACC1/cancel", content=content, headers={**headers, **token})
        fhir = await http.post("/fhir/ServiceRequest", content=content, headers={**headers, **token})
        accepted = await http.post("/orders/ACC1/cancel", json={"reason": "x"}, headers=token)
    assert refused.status_code == 415 and "JSON" in refused.json()["detail"], refused.text
    assert fhir.status_code == 415 and fhir.json()["resourceType"] == "OperationOutcome"
    assert accepted.status_code == 503  # through to the handler (no Temporal here)


async def test_fhir_json_content_type_is_json(tmp_path: Path) -> None:
    async with client(tmp_path) as http:
        resp = await http.post("/fhir/ServiceRequest", content=b"{}", headers={"Content-Type": "application/fhir+json; charset=utf-8"})
    assert resp.status_code not in (401, 403, 415), resp.text


async def test_cors_is_off_unless_configured(tmp_path: Path) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    async with client(tmp_path) as http:
        off = await http.options("/orders/ACC1/cancel", headers=preflight)
        off_get = await http.get("/healthz", headers={"Origin": "https://evil.example"})
    async with client(tmp_path, api_cors_origins=["https://ris.hospital.example"]) as http:
        other = await http.options("/orders/ACC1/cancel", headers=preflight)
        allowed = await http.options("/orders/ACC1/cancel", headers={**preflight, "Origin": "https://ris.hospital.example"})
    assert "access-control-allow-origin" not in off.headers and "access-control-allow-origin" not in off_get.headers
    assert "access-control-allow-origin" not in other.headers
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://ris.hospital.example"


async def test_tokens_never_reach_logs_or_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "Bearer wrong-" + SECRET
    caplog.set_level(logging.DEBUG)
    async with client(tmp_path, api_keys=SecretStr(f"op:operator:{SECRET}")) as http:
        answers = [
            await http.get("/orders/ACC1", headers={"Authorization": wrong}),
            await http.get("/orders/ACC1", headers={"Authorization": f"Bearer {SECRET}"}),
            await http.post("/orders/ACC1/cancel", json={}, headers={"Authorization": f"Bearer {SECRET}"}),
        ]
    assert [a.status_code for a in answers] == [401, 403, 503]
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records) + "".join(a.text for a in answers)
    audit = (tmp_path / "audit.jsonl").read_text()
    assert SECRET not in text and SECRET not in audit
    assert SECRET not in repr(Settings(api_keys=SecretStr(f"op:operator:{SECRET}")))
