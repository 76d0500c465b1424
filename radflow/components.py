"""The long-running pieces a radflow process hosts, each with the same start/stop shape.

`radflow dev` runs all of them in one asyncio process; the production commands run one
each (`radflow worker`, `radflow mllp`, `radflow api`). New inbound gateways (DICOM,
FHIR, ...) add a component and list it in `gateway_components`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.worker import Worker

from radflow.devstack import DevServer
from radflow.gateways.dicom.purge_task import start_purge, stop_purge
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.worker import build_worker

log = logging.getLogger("radflow.components")


class Component(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def endpoints(self) -> list[tuple[str, str]]:
        """(label, address) lines for the startup banner."""
        ...

    def failed(self) -> asyncio.Task | None:
        """A task that finishing on its own means the component died (None: nothing to watch)."""
        ...


class TemporalDevComponent:
    name = "temporal-dev-server"

    def __init__(self, server: DevServer, namespace: str = "default") -> None:
        self.server = server
        self.namespace = namespace

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        # stop() waits for the process (SIGTERM, then SIGKILL); keep the loop free meanwhile.
        await asyncio.to_thread(self.server.stop)

    def endpoints(self) -> list[tuple[str, str]]:
        out = [("Temporal gRPC", f"{self.server.address}  (namespace {self.namespace})")]
        if self.server.ui_port:
            out.append(("Temporal UI", f"http://{self.server.host}:{self.server.ui_port}/namespaces/{self.namespace}/workflows"))
        pid = self.server.process.pid if self.server.process else "?"
        out.append(("dev server pid", f"{pid}  (data: {self.server.db_file or 'in memory'})"))
        return out

    def failed(self) -> asyncio.Task | None:
        return None


class WorkerComponent:
    name = "worker"

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.worker: Worker | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.worker = build_worker(self.client, self.settings)
        self.task = asyncio.create_task(self.worker.run(), name="temporal-worker")
        self.purge = start_purge(self.settings, worker=True)
        await asyncio.sleep(0)  # let it fail fast on a bad registration

    async def stop(self) -> None:
        await stop_purge(getattr(self, "purge", None))
        if self.worker is None or self.task is None:
            return
        if not self.task.done():
            await self.worker.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def endpoints(self) -> list[tuple[str, str]]:
        return [("Worker", f"task queue {self.settings.task_queue}")]

    async def ready(self) -> str | None:
        """None when polling (radflow/infra/health.py readiness), else why not."""
        if self.task is None:
            return "worker not started"
        return "worker stopped" if self.task.done() else None

    def failed(self) -> asyncio.Task | None:
        return self.task


class MllpComponent:
    name = "mllp"

    def __init__(self, service: OrderService, settings: Settings, host: str, port: int) -> None:
        self.service = service
        self.settings = settings
        self.host = host
        self.port = port
        self.server: asyncio.Server | None = None
        self.gateway = None

    async def start(self) -> None:
        from radflow.gateways.hl7_gateway import Hl7Gateway

        self.gateway = Hl7Gateway(self.service, self.settings)
        # The gateway's listener carries the mllp_* limits from settings.
        self.server = await self.gateway.serve(self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            close_clients = getattr(self.server, "close_clients", None)  # Python >= 3.13
            if close_clients is not None:
                close_clients()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), timeout=5)
        close = getattr(self.gateway, "aclose", None)
        if close is not None:
            await close()

    def endpoints(self) -> list[tuple[str, str]]:
        from radflow.infra.tls import listener_enabled

        tls = "  (TLS)" if listener_enabled(self.settings, "mllp") else ""
        return [("HL7 MLLP", f"{self.host}:{self.port}{tls}")]

    async def ready(self) -> str | None:
        if self.server is None:
            return "MLLP listener not started"
        return None if self.server.is_serving() else "MLLP listener closed"

    def failed(self) -> asyncio.Task | None:
        return None


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the host process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiComponent:
    name = "api"

    def __init__(self, app: FastAPI, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        # HTTPS with radflow's own context (radflow/infra/tls.py: TLS 1.2+, optional client certificates).
        factory = (lambda _config, _default: tls) if tls is not None else None
        # proxy_headers off: uvicorn would believe X-Forwarded-For from 127.0.0.1; the API's audit
        # decides whom to believe (RADFLOW_API_TRUSTED_PROXIES, api/audit.py).
        self.server = _Uvicorn(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                                              ssl_context_factory=factory, proxy_headers=False))
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._serve(), name="api")
        while not self.server.started:
            if self.task.done():
                error = self.task.exception() if not self.task.cancelled() else None
                raise RuntimeError(f"API server did not start on {self.host}:{self.port}: {error}")
            await asyncio.sleep(0.02)

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit as err:
            # uvicorn reports a failed bind with sys.exit(1); SystemExit in a task would stop the loop.
            raise RuntimeError(f"uvicorn exited with {err.code} (port in use?)") from None

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def endpoints(self) -> list[tuple[str, str]]:
        base = f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"
        return [("HTTP API", base), ("API docs", f"{base}/docs"), ("Health/metrics", f"{base}/readyz  {base}/metrics")]

    def failed(self) -> asyncio.Task | None:
        return self.task


def gateway_components(settings: Settings, service: OrderService, host: str) -> list[Component]:
    """Inbound gateways `radflow dev` runs next to the worker and the API (add new ones here)."""
    from radflow.gateways.dicom.component import DicomComponent

    return [MllpComponent(service, settings, host, settings.mllp_port),
            DicomComponent(service, settings, host, settings.dicom_port)]
