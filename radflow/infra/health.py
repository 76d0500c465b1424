"""Liveness, readiness and metrics over HTTP, one small endpoint per process.

  GET /livez    200 while the process's event loop answers (restart it when this fails)
  GET /readyz   200 when every readiness check passes (connected to Temporal, stores open,
                listener up); else 503 with one line per failing check: take it out of service
  GET /metrics  Prometheus text: radflow's metrics (radflow/infra/metrics.py), the Temporal SDK's
                (radflow/infra/telemetry.py) and the process/Python defaults

`radflow worker|mllp|dicom|dev` serve them on `health_host:health_port` (HealthComponent);
`radflow api` serves them on its own app (api/routes/health.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from radflow.infra import metrics
from radflow.infra.telemetry import drain_temporal_metrics

log = logging.getLogger("radflow.health")

CHECK_TIMEOUT_S = 3.0
# Per role, so the processes of one host do not collide by default (RADFLOW_HEALTH_PORT / --health-port).
DEFAULT_PORTS = {"worker": 9461, "mllp": 9462, "dicom": 9463}

# A check returns None when ready, else a short reason (no PHI, no secrets).
Check = Callable[[], Awaitable[str | None]]


class Readiness:
    """The named checks of one process; components add theirs as they start."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def failures(self) -> dict[str, str]:
        if not self.checks:
            return {"startup": "starting"}
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(self.checks[n]) for n in names))
        return {n: r for n, r in zip(names, results, strict=True) if r is not None}

    @staticmethod
    async def _run(check: Check) -> str | None:
        try:
            return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return "no answer in time"
        except Exception as err:  # a check that breaks means "not ready", never a 500
            return type(err).__name__


def temporal_check(get_client: Callable[[], object | None]) -> Check:
    """Ready when the client is connected and Temporal's frontend answers its health check."""

    async def check() -> str | None:
        client = get_client()
        if client is None:
            return "not connected to Temporal yet"
        try:
            ok = await client.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT_S - 0.5))  # type: ignore[attr-defined]
        except Exception as err:
            return f"Temporal unreachable ({type(err).__name__})"
        return None if ok else "Temporal frontend not serving"

    return check


def store_check(open_store: Callable[[], object], what: str) -> Check:
    """Ready when the read model answers a count (opened on the first check, then kept: a store that
    cannot be opened yet, e.g. PostgreSQL still down, is a reason, not a crash)."""
    opened: list[object] = []

    async def check() -> str | None:
        try:
            if not opened:
                opened.append(await asyncio.to_thread(open_store))
            await asyncio.to_thread(opened[0].count)  # type: ignore[attr-defined]
        except Exception as err:
            return f"{what} unavailable ({type(err).__name__})"
        return None

    return check


def task_check(get_task: Callable[[], asyncio.Task | None], what: str) -> Check:
    async def check() -> str | None:
        task = get_task()
        if task is None:
            return f"{what} not started"
        return f"{what} stopped" if task.done() else None

    return check


async def readyz_response(readiness: Readiness) -> Response:
    failing = await readiness.failures()
    if not failing:
        return PlainTextResponse("ready\n")
    return PlainTextResponse("".join(f"{name}: {reason}\n" for name, reason in sorted(failing.items())), status_code=503)


def metrics_response() -> Response:
    drain_temporal_metrics()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def health_app(readiness: Readiness) -> Starlette:
    async def livez(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        return await readyz_response(readiness)

    async def metrics_route(_: Request) -> Response:
        return metrics_response()

    return Starlette(routes=[Route("/livez", livez), Route("/readyz", readyz), Route("/metrics", metrics_route)])


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the host process owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):  # noqa: ANN201
        yield


def health_component(settings, role: str, readiness: Readiness) -> HealthComponent | None:  # noqa: ANN001
    """The role's listener from settings (None when RADFLOW_HEALTH_PORT=0)."""
    port = settings.health_port
    if port == 0:
        return None
    return HealthComponent(readiness, settings.health_host, port or DEFAULT_PORTS[role], required=port is not None)


class PeriodicComponent:
    """A background coroutine run for the life of the process (e.g. the order gauges)."""

    def __init__(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self.factory = factory
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.factory(), name=self.name)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def endpoints(self) -> list[tuple[str, str]]:
        return []

    def failed(self) -> asyncio.Task | None:
        return None


class HealthComponent:
    """The health/metrics listener, started first so probes see 503 until the rest is up."""

    name = "health"

    def __init__(self, readiness: Readiness, host: str, port: int, *, required: bool = True) -> None:
        self.readiness = readiness
        self.host, self.port = host, port
        # A default port someone else holds (two roles on one host, tests) costs the endpoint, not the process.
        self.required = required
        self.server = _Uvicorn(uvicorn.Config(health_app(readiness), host=host, port=port, log_config=None,
                                              access_log=False, lifespan="off"))
        self.task: asyncio.Task | None = None
        self._drainer: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._serve(), name="health")
        while not self.server.started:
            if self.task.done():
                error = self.task.exception() if not self.task.cancelled() else None
                if self.required:
                    raise RuntimeError(f"health endpoint did not start on {self.host}:{self.port}: {error}")
                log.warning("health endpoint not started (set RADFLOW_HEALTH_PORT)",
                            extra={"bind": f"{self.host}:{self.port}", "error": str(error)[:200]})
                self.task = None
                return
            await asyncio.sleep(0.02)
        self._drainer = asyncio.create_task(drain_periodically(), name="temporal-metrics-drain")

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit as err:  # uvicorn's failed bind; SystemExit in a task would stop the loop
            raise RuntimeError(f"uvicorn exited with {err.code} (port in use?)") from None

    async def stop(self) -> None:
        for task in (self._drainer,):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def endpoints(self) -> list[tuple[str, str]]:
        if self.task is None:
            return [("Health/metrics", "not serving (port in use)")]
        base = f"http://{self.host}:{self.port}"
        return [("Health/metrics", f"{base}/readyz  {base}/metrics")]

    def failed(self) -> asyncio.Task | None:
        return self.task


async def drain_periodically(every_s: float = 5.0) -> None:
    """Keep the SDK's metric buffer from filling between scrapes (it drops updates when full)."""
    while True:
        await asyncio.sleep(every_s)
        drain_temporal_metrics()


async def refresh_order_gauges(client: object, every_s: float) -> None:
    """Orders open / needing attention, from Temporal visibility (eventually consistent, hence a gauge
    refreshed now and then, not an exact count)."""
    from radflow.domain.definitions import ORDER_WORKFLOW_TYPES, SA_NEEDS_ATTENTION

    types = " OR ".join(f"WorkflowType = '{t}'" for t in ORDER_WORKFLOW_TYPES)
    open_query = f"ExecutionStatus = 'Running' AND ({types})"
    attention_query = f"{open_query} AND {SA_NEEDS_ATTENTION.name} = true"
    while True:
        try:
            metrics.ORDERS_OPEN.set((await client.count_workflows(open_query)).count)  # type: ignore[attr-defined]
            metrics.ORDERS_NEEDING_ATTENTION.set((await client.count_workflows(attention_query)).count)  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            raise
        except Exception as err:
            metrics.VISIBILITY_REFRESH_FAILURES.inc()
            log.debug("order gauges not refreshed: %s", type(err).__name__)
        await asyncio.sleep(every_s)
