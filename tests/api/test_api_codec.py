"""The codec server (/codec/decode, /codec/encode) in the Temporal UI's JSON format, behind the API's auth."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload

from radflow.api.app import create_app
from radflow.service.codec import EncryptionCodec, ensure_keys_file, load_keys
from radflow.infra.settings import Settings

SECRETS = {name: f"{name}-secret-{'y' * 20}" for name in ("reader", "operator")}
KEYS = ",".join(f"{name}-client:{name}:{secret}" for name, secret in SECRETS.items())
UI = "http://127.0.0.1:8233"


def as_json(p: Payload) -> dict:
    return {"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
            "data": base64.b64encode(p.data).decode()}


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    ensure_keys_file(tmp_path / "keys")
    return tmp_path / "keys"


@pytest.fixture
async def http(tmp_path: Path, keys: Path):  # noqa: ANN201
    settings = Settings(api_keys=SecretStr(KEYS), codec_keys_file=keys, codec_cors_origins=[UI],
                        audit_log=tmp_path / "audit.jsonl")
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as client:
        yield client


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[role]}", "X-Namespace": "default"}


async def test_decode_needs_a_reader_and_is_audited(http: httpx.AsyncClient, keys: Path, tmp_path: Path) -> None:
    sealed = await EncryptionCodec(load_keys(keys)).encode([Payload(metadata={"encoding": b"json/plain"},
                                                                    data=b'{"family": "Zyxwvut"}')])
    body = {"payloads": [as_json(p) for p in sealed]}
    assert (await http.post("/codec/decode", json=body)).status_code == 401
    answer = await http.post("/codec/decode", json=body, headers=auth("reader"))
    assert answer.status_code == 200
    [back] = answer.json()["payloads"]
    assert base64.b64decode(back["data"]) == b'{"family": "Zyxwvut"}'
    assert base64.b64decode(back["metadata"]["encoding"]) == b"json/plain"
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e["who"], e["outcome"]) for e in audit] == [
        ("POST /codec/decode", None, 401), ("POST /codec/decode", "reader-client", 200)]
    assert audit[1]["interaction"] == "read" and audit[1]["payloads"] == 1 and audit[1]["namespace"] == "default"
    assert audit[1]["interaction"] == "read"  # a PHI read (a BALP read AuditEvent), not a change


async def test_encode_needs_an_operator(http: httpx.AsyncClient, keys: Path) -> None:
    body = {"payloads": [as_json(Payload(metadata={"encoding": b"json/plain"}, data=b'"signal input"'))]}
    assert (await http.post("/codec/encode", json=body, headers=auth("reader"))).status_code == 403
    answer = await http.post("/codec/encode", json=body, headers=auth("operator"))
    assert answer.status_code == 200
    [sealed] = answer.json()["payloads"]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == b"binary/encrypted"
    raw = Payload(metadata={k: base64.b64decode(v) for k, v in sealed["metadata"].items()},
                  data=base64.b64decode(sealed["data"]))
    assert (await EncryptionCodec(load_keys(keys)).decode([raw]))[0].data == b'"signal input"'


async def test_unknown_key_and_tampering_are_typed_422(http: httpx.AsyncClient, tmp_path: Path) -> None:
    ensure_keys_file(tmp_path / "other")
    foreign = await EncryptionCodec(load_keys(tmp_path / "other")).encode([Payload(data=b"x")])
    answer = await http.post("/codec/decode", json={"payloads": [as_json(foreign[0])]}, headers=auth("reader"))
    assert answer.status_code == 422 and answer.json()["detail"][0]["type"] == "UnknownKeyId"
    bad = as_json(foreign[0]) | {"data": "not base64!"}
    answer = await http.post("/codec/decode", json={"payloads": [bad]}, headers=auth("reader"))
    assert answer.status_code == 422 and answer.json()["detail"][0]["type"] == "NotBase64"


async def test_cors_for_the_ui_origin_only(http: httpx.AsyncClient) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type,x-namespace"}
    ok = await http.options("/codec/decode", headers={"Origin": UI, **asked})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == UI
    assert "x-namespace" in ok.headers["access-control-allow-headers"].lower()
    other = await http.options("/codec/decode", headers={"Origin": "http://evil.example", **asked})
    assert "access-control-allow-origin" not in other.headers
    # the rest of the API keeps its own CORS setting (off here)
    orders = await http.options("/orders", headers={"Origin": UI, **asked})
    assert "access-control-allow-origin" not in orders.headers


async def test_not_configured_is_404(tmp_path: Path) -> None:
    app = create_app(Settings(api_auth="none", audit_log=tmp_path / "a.jsonl"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.post("/codec/decode", json={"payloads": []})
    assert answer.status_code == 404 and answer.json()["error_type"] == "CodecNotConfigured"
