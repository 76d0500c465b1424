"""The FHIR routes under test: real API app served by uvicorn on loopback TCP, a real worker
(registered activities, worklist read model in a temp SQLite file) and the session dev server.

No FHIR delivery endpoint is configured, so delivery steps record "not configured".
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from radflow.api.app import create_app
from radflow.devstack import free_port
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.service.wiring import order_service
from radflow.worker import build_worker

IDENT_BASE = "https://rf.test/fhir"


@dataclass
class FhirStack:
    http: httpx.AsyncClient
    service: OrderService
    settings: Settings


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """The app on a free loopback port for the duration of the block; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def stack_settings(task_queue: str, tmp: Path) -> Settings:
    return Settings(
        task_queue=task_queue,
        data_dir=tmp,
        mwl_db=tmp / "worklist.db",
        mpps_db=tmp / "mpps.db",
        sync_consumers=["worklist", "fhir"],
        report_consumers=["fhir"],
        acquisition_consumers=[],
        fhir_base_url="",
        fhir_identifier_base=IDENT_BASE,
        dicomweb_base_url="https://pacs.test/dicom-web",
        accession_prefix="F" + uuid.uuid4().hex[:5].upper(),
        step_max_attempts=2,
        step_initial_interval_s=0.1,
        step_max_interval_s=0.2,
        temporal_rpc_timeout_s=5.0,
    )


@pytest.fixture
async def fhir_stack(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[FhirStack]:
    settings = stack_settings(task_queue, tmp_path)
    service = order_service(client, settings)
    async with build_worker(client, settings), serve(create_app(settings, service)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=15.0) as http:
            yield FhirStack(http, service, settings)
