"""Health, docs, and the 503 answer when Temporal cannot be reached (nothing acknowledged)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig

from radflow.api.app import create_app
from radflow.components import ApiComponent
from radflow.devstack import DevServer, free_port
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.waiting import eventually


async def test_healthz_ok_when_temporal_answers(api: httpx.AsyncClient, settings: Settings) -> None:
    resp = await api.get("/healthz")
    assert resp.status_code == 200, resp.text
    assert resp.json()["temporal"] == "ok" and resp.json()["task_queue"] == settings.task_queue


async def test_openapi_docs_are_served(api: httpx.AsyncClient) -> None:
    docs = await api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {"/orders", "/orders/{accession}", "/orders/{accession}/timeline", "/orders/{accession}/schedule",
            "/orders/{accession}/cancel", "/orders/{accession}/retry", "/healthz"} <= set(paths)


@pytest.fixture
async def dead_api(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    # Temporal goes away after the API connected: the realistic outage.
    server = DevServer(db_file=None, port=free_port(), ui_port=None, log_file=tmp_path / "dev.log")
    await server.start()
    # The client's own retries (10 s by default, not bounded by rpc_timeout) are cut short
    # here so the test stays fast; the mapping under test is the same.
    client = await Client.connect(server.address, data_converter=pydantic_data_converter,
                                  retry_config=RetryConfig(max_elapsed_time_millis=500, max_retries=2))
    server.stop()
    service = OrderService(client, task_queue="tq-dead", rpc_timeout_s=1.0)
    app = create_app(Settings(task_queue="tq-dead"), service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
        yield http


async def test_temporal_unreachable_is_503_never_success(dead_api: httpx.AsyncClient) -> None:
    assert (await dead_api.get("/healthz")).status_code == 503
    for method, path, payload in [
        ("GET", "/orders/ACC1", None),
        ("GET", "/orders", None),
        ("POST", "/orders/ACC1/cancel", {"reason": "x"}),
        ("POST", "/orders/ACC1/schedule", {"station_ae": "CT1", "start": "2030-01-01T10:00:00Z"}),
    ]:
        resp = await dead_api.request(method, path, json=payload)
        assert resp.status_code == 503, (method, path, resp.status_code, resp.text)
        assert resp.headers.get("retry-after")


async def test_api_without_service_answers_503_until_connected() -> None:
    # The lifespan is not run by ASGITransport, so the app stays "not connected yet".
    app = create_app(Settings(temporal_address=f"127.0.0.1:{free_port()}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
        assert (await http.get("/healthz")).status_code == 503
        assert (await http.get("/orders/ANY")).status_code == 503


async def test_lifespan_connects_to_temporal_from_settings(dev_server: DevServer, task_queue: str) -> None:
    """`radflow api` shape: no service given, the app connects itself (real uvicorn, real port)."""
    port = free_port()
    app = create_app(Settings(temporal_address=dev_server.address, task_queue=task_queue))
    api = ApiComponent(app, "127.0.0.1", port)
    await api.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await eventually(lambda: http.get("/healthz"), lambda r: r.status_code == 200, timeout_s=15)
            assert health.status_code == 200 and health.json()["task_queue"] == task_queue
            assert (await http.get("/orders/NOT-THERE")).status_code == 404
    finally:
        await api.stop()
