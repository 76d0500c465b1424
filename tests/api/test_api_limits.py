"""Hostile HTTP input: bounded bodies, no 500s, bad filters 422 without server internals.

Everything runs against the real app served by uvicorn on loopback TCP (a real worker and
the session Temporal dev server behind it), since body limits are about what a socket sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource
from radflow.api.app import create_app
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.api.fhir_stack import serve, stack_settings
from tests.factories import make_order

LIMIT = 64 * 1024
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
async def base_url(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[str]:
    settings = stack_settings(task_queue, tmp_path)
    settings.api_max_body_bytes = LIMIT
    service = order_service(client, settings)
    async with build_worker(client, settings), serve(create_app(settings, service)) as url:
        yield url


async def _raw_request(url: str, head: str, body_part: bytes, timeout: float = 10.0) -> tuple[bytes, float]:
    """Send a request head and only the first part of its body; return the status line and when it came."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    started = time.monotonic()
    writer.write(head.encode("latin-1") + body_part)
    await writer.drain()
    try:
        status = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    return status, time.monotonic() - started


@pytest.mark.parametrize("path", ["/orders/ACC1/cancel", "/fhir/ServiceRequest"])
async def test_a_declared_50_mib_body_is_refused_before_it_is_read(base_url: str, path: str) -> None:
    head = (f"POST {path} HTTP/1.1\r\nHost: radflow.test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {50 * 1024 * 1024}\r\n\r\n")
    # Only 1 KiB of the announced 50 MiB is ever sent: the answer cannot wait for the rest.
    status, _ = await _raw_request(base_url, head, b"{" + b" " * 1023)
    assert status.startswith(b"HTTP/1.1 413"), status


async def test_a_chunked_body_is_refused_once_over_the_limit(base_url: str) -> None:
    head = ("POST /fhir/ServiceRequest HTTP/1.1\r\nHost: radflow.test\r\nContent-Type: application/fhir+json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % (48 * 1024) + b" " * (48 * 1024) + b"\r\n"
    # Two chunks (96 KiB) go over the 64 KiB limit; the body never ends: the answer must not wait.
    status, _ = await _raw_request(base_url, head, chunk * 2)
    assert status.startswith(b"HTTP/1.1 413"), status


async def test_deeply_nested_json_is_bad_input_not_a_500(base_url: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # 200 KB: passes a 1 MiB limit in production
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        api = await http.post("/orders/ACC1/cancel", content=deep[: LIMIT - 2] if len(deep) > LIMIT else deep,
                              headers={"Content-Type": "application/json"})
        fhir = await http.post("/fhir/ServiceRequest", content=b"[" * 30_000 + b"]" * 30_000, headers=FHIR)
        nested = {"resourceType": "ServiceRequest", "contained": [{}]}
        inner = nested["contained"][0]
        for _ in range(200):
            inner["x"] = {}
            inner = inner["x"]
        deep_dict = await http.post("/fhir/ServiceRequest", json=nested, headers=FHIR)
    assert api.status_code == 422, api.text
    assert api.json()["detail"][0]["type"] == "json_invalid"
    assert fhir.status_code == 400 and "deeper" in fhir.json()["issue"][0]["diagnostics"], fhir.text
    assert deep_dict.status_code == 400 and "deeper" in deep_dict.json()["issue"][0]["diagnostics"], deep_dict.text


async def test_recursion_deep_json_within_the_production_limit(client: Client, task_queue: str, tmp_path: Path) -> None:
    # The production default (1 MiB) admits 100,000 levels: that is what raised RecursionError.
    settings = stack_settings(task_queue, tmp_path)
    service = order_service(client, settings)
    deep = b"[" * 100_000 + b"]" * 100_000
    async with serve(create_app(settings, service)) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        api = await http.post("/orders/ACC1/cancel", content=deep, headers={"Content-Type": "application/json"})
        fhir = await http.post("/fhir/ServiceRequest", content=deep, headers=FHIR)
    assert api.status_code == 422 and api.json()["detail"][0]["msg"] == "the request body is nested too deeply", api.text
    assert fhir.status_code == 400 and fhir.json()["resourceType"] == "OperationOutcome", fhir.text


@pytest.mark.parametrize("value", ["M1\x00", "M1\u202eX", "\x1b[31m"])
@pytest.mark.parametrize("param", ["patient", "accession", "station", "modality", "next_page_token"])
async def test_control_and_format_characters_in_filters_are_422_without_sql(base_url: str, param: str, value: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        resp = await http.get("/orders", params={param: value})
    assert resp.status_code == 422, resp.text
    (problem,) = resp.json()["detail"]
    assert problem["loc"] == ["query", param]
    assert "not allowed: U+" in problem["msg"]
    assert "select" not in resp.text.lower() and "sql" not in resp.text.lower()


@pytest.mark.parametrize("path", ["/orders/A%00B", "/orders/A%E2%80%AEB/timeline", "/exceptions/study/1.2%003"])
async def test_control_characters_in_path_ids_are_422(base_url: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        resp = await http.get(path)
    assert resp.status_code == 422, resp.text
    assert "not allowed: U+" in resp.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "query",
    [{"_count": "9" * 5000}, {"_count": "²"}, {"_count": "-1"}, {"patient": "M1\x00"}, {"identifier": "sys|A\u202e"}],
)
async def test_fhir_search_bad_parameters_are_400_operation_outcomes(base_url: str, query: dict) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        resp = await http.get("/fhir/ServiceRequest", params=query)
    assert resp.status_code == 400, resp.text
    issue = resp.json()["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    assert "sql" not in resp.text.lower()


async def test_fhir_ids_radflow_never_issues_are_404(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for rid in ("A%00B", "FON_1", "x" * 65):
            resp = await http.get(f"/fhir/ServiceRequest/{rid}")
            assert resp.status_code == 404, (rid, resp.text)
            assert resp.json()["issue"][0]["code"] == "not-found"


async def test_list_still_finds_orders_with_ordinary_filters(base_url: str, client: Client, task_queue: str, tmp_path: Path) -> None:
    # The character check refuses only control/format characters: real values pass.
    settings = stack_settings(task_queue, tmp_path)
    order = make_order(mrn="MRN-ÄÖ'1")
    await order_service(client, settings).start_order(order, EventSource.API)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for _ in range(50):
            rows = (await http.get("/orders", params={"patient": "MRN-ÄÖ'1"})).json()["orders"]
            if rows:
                break
            await asyncio.sleep(0.1)
    assert [r["accession"] for r in rows] == [order.accession]


@pytest.mark.parametrize(
    "params,headers",
    [
        ({"page_size": "9" * 5000}, {}),
        ({"scheduled_from": "9" * 5000}, {}),
        ({"scheduled_from": "2030-01-02T00:00:00Z", "scheduled_to": "2030-01-01T00:00:00Z"}, {}),
        ({}, {"Idempotency-Key": "k\x85ey"}),  # a C1 control character that HTTP/1.1 lets through
    ],
)
async def test_other_hostile_parameters_are_422(base_url: str, params: dict, headers: dict) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        if headers:
            resp = await http.post("/orders/ACC1/cancel", json={}, headers={k: v.encode("latin-1") for k, v in headers.items()})
        else:
            resp = await http.get("/orders", params=params)
    assert resp.status_code == 422, resp.text
    assert isinstance(resp.json()["detail"], list) and resp.json()["detail"][0]["msg"]
