"""A radflow stack inside the test process: real worker, MLLP gateway and API on free ports,
against a real Temporal server, started and stopped with the same components `radflow dev` uses."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from radflow.api.app import create_app
from radflow.components import ApiComponent, MllpComponent, WorkerComponent
from radflow.devstack import free_port
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.service.wiring import order_service


def stack_settings(task_queue: str, **overrides: Any) -> Settings:
    """Fast retries; report delivery to an EHR port nobody listens on (fails for real)."""
    values: dict[str, Any] = dict(
        task_queue=task_queue,
        step_max_attempts=2,
        step_initial_interval_s=0.1,
        step_max_interval_s=0.2,
        ehr_mllp_host="127.0.0.1",
        ehr_mllp_port=free_port(),
        ehr_mllp_timeout_s=1.0,
        temporal_rpc_timeout_s=5.0,
        mllp_port=free_port(),
        api_port=free_port(),
        # Only the HL7 consumer: these stacks test API/CLI/gateway paths, not the FHIR/DICOM mirrors.
        report_consumers=["hl7"],
        sync_consumers=[],
        acquisition_consumers=[],
        # Worklist/MPPS/spool files go to a scratch dir, never into the working tree.
        data_dir=Path(tempfile.mkdtemp(prefix="radflow-test-")),
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class Stack:
    settings: Settings
    service: OrderService
    client: Client

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def mllp_port(self) -> int:
        return self.settings.mllp_port


@contextlib.asynccontextmanager
async def running_stack(client: Client, settings: Settings, *, api: bool = True) -> AsyncIterator[Stack]:
    service = order_service(client, settings)
    comps = [WorkerComponent(client, settings), MllpComponent(service, settings, "127.0.0.1", settings.mllp_port)]
    if api:
        comps.append(ApiComponent(create_app(settings, service), "127.0.0.1", settings.api_port))
    started = []
    try:
        for comp in comps:
            await comp.start()
            started.append(comp)
        yield Stack(settings=settings, service=service, client=client)
    finally:
        for comp in reversed(started):
            await comp.stop()
