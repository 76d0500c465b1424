"""The FastAPI application: routers, error mapping, and the Temporal client's lifetime.

Errors map the same way everywhere: unknown order -> 404, refused transition -> 409,
bad filter -> 422, Temporal unreachable -> 503 (nothing was applied; retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError

from api.routes import ROUTERS
from radflow.order_search import InvalidFilter
from radflow.ordering import EventRejected, OrderNotFound, OrderService, TemporalUnavailable
from radflow.settings import Settings
from radflow.temporal import connect
from radflow.wiring import order_service

log = logging.getLogger("radflow.api")

RECONNECT_EVERY_S = 2.0


async def _connect_until_up(app: FastAPI, settings: Settings) -> None:
    # The API starts even while Temporal is down: /healthz and every order call answer 503
    # until this succeeds, instead of the process crash-looping.
    while app.state.service is None:
        try:
            client = await connect(settings)
        except Exception as err:  # connection refused, TLS, DNS...: all mean "not yet"
            log.warning("temporal not reachable, retrying", extra={"address": settings.temporal_address, "error": str(err)[:200]})
            await asyncio.sleep(RECONNECT_EVERY_S)
            continue
        app.state.service = order_service(client, settings)
        log.info("connected to temporal", extra={"address": settings.temporal_address, "namespace": settings.temporal_namespace})


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    task = None
    if app.state.service is None:
        task = asyncio.create_task(_connect_until_up(app, app.state.settings))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _error(status: int, detail: str, error_type: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"detail": detail}
    if error_type:
        body["error_type"] = error_type
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OrderNotFound)
    async def _not_found(_: Request, err: OrderNotFound) -> JSONResponse:
        return _error(404, str(err))

    @app.exception_handler(EventRejected)
    async def _rejected(_: Request, err: EventRejected) -> JSONResponse:
        return _error(409, str(err), str(err.error_type))

    @app.exception_handler(InvalidFilter)
    async def _bad_filter(_: Request, err: InvalidFilter) -> JSONResponse:
        return _error(422, str(err), "InvalidFilter")

    @app.exception_handler(TemporalUnavailable)
    async def _unavailable(_: Request, err: TemporalUnavailable) -> JSONResponse:
        return _error(503, str(err), "TemporalUnavailable", {"Retry-After": "2"})

    @app.exception_handler(RPCError)
    async def _rpc(_: Request, err: RPCError) -> JSONResponse:
        # An RPC failure OrderService did not classify: never report success, let the client retry.
        log.warning("unclassified temporal error", extra={"status": str(err.status), "error": err.message[:200]})
        return _error(503, f"Temporal error: {err.message}", "TemporalUnavailable", {"Retry-After": "2"})


def create_app(
    settings: Settings | None = None,
    service: OrderService | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API app. Without `service` the lifespan connects to Temporal from `settings`."""
    settings = settings or Settings()
    app = FastAPI(
        title="radflow",
        summary="Imaging orders as durable Temporal workflows",
        version="0.1.0",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    for router in [*ROUTERS, *routers]:
        app.include_router(router)
    _install_error_handlers(app)
    return app
