"""The FastAPI application: routers, error mapping, and the Temporal client's lifetime.

Errors map the same way everywhere: unknown order -> 404, refused transition -> 409,
body over the size limit -> 413, bad input or filter -> 422 (FastAPI's `detail` list:
loc, msg, type), Temporal unreachable -> 503 (nothing was applied; retry). No answer
carries server internals (SQL, stack traces): those go to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from radflow.api.audit import ApiAudit
from radflow.api.auth import Authenticator
from radflow.api.fhir_http import FhirError, error_response
from radflow.api import openapi_security
from radflow.api.docs import describe_builtin_schemas, docs_router
from radflow.api.guard import Guard
from radflow.api.routes import ROUTERS
from radflow.api.routes.codec import CodecCors
from radflow.infra.audit_outbox import AuditOutbox
from radflow.infra.audit_trail import AuditTrail
from radflow.service.codec import EncryptionCodec, load_keys
from radflow.api.tracing import TraceRequests
from radflow.infra.health import Readiness, temporal_check
from radflow.service.order_search import InvalidFilter
from radflow.service.ordering import EventRejected, OrderNotFound, OrderService, TemporalUnavailable
from radflow.infra.settings import Settings
from radflow.service.temporal import connect
from radflow.service.wiring import order_service

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
    tasks = []
    if app.state.service is None:
        tasks.append(asyncio.create_task(_connect_until_up(app, app.state.settings)))
    if app.state.audit_outbox is not None:
        # AuditEvents leave from the durable trail in the background: never in a request's way.
        tasks.append(asyncio.create_task(app.state.audit_outbox.run()))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _error(status: int, detail: str, error_type: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"detail": detail}
    if error_type:
        body["error_type"] = error_type
    return JSONResponse(body, status_code=status, headers=headers)


def invalid(loc: list[str], message: str, error_type: str) -> JSONResponse:
    """A 422 in the shape FastAPI's own validation errors have (documented as HTTPValidationError)."""
    return JSONResponse({"detail": [{"loc": loc, "msg": message, "type": error_type}]}, status_code=422)


UNAVAILABLE = "Temporal unavailable: nothing was applied, retry"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OrderNotFound)
    async def _not_found(_: Request, err: OrderNotFound) -> JSONResponse:
        return _error(404, str(err))

    @app.exception_handler(EventRejected)
    async def _rejected(_: Request, err: EventRejected) -> JSONResponse:
        return _error(409, str(err), str(err.error_type))

    @app.exception_handler(InvalidFilter)
    async def _bad_filter(_: Request, err: InvalidFilter) -> JSONResponse:
        if isinstance(err.__cause__, RPCError):
            # Temporal's own words may quote its SQL: log them, answer in ours.
            log.warning("visibility refused a filter", extra={"error": str(err)[:300]})
            return invalid(["query"], "Temporal cannot search with this filter", "invalid_filter")
        return invalid(["query"], str(err), "invalid_filter")

    @app.exception_handler(TemporalUnavailable)
    async def _unavailable(_: Request, err: TemporalUnavailable) -> JSONResponse:
        log.warning("temporal unavailable", extra={"error": str(err)[:300]})
        return _error(503, UNAVAILABLE, "TemporalUnavailable", {"Retry-After": "2"})

    @app.exception_handler(RPCError)
    async def _rpc(_: Request, err: RPCError) -> JSONResponse:
        # An RPC failure OrderService did not classify: never report success, let the client retry.
        log.warning("unclassified temporal error", extra={"status": str(err.status), "error": err.message[:300]})
        return _error(503, UNAVAILABLE, "TemporalUnavailable", {"Retry-After": "2"})

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith("/fhir"):
            first = (err.errors() or [{}])[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return error_response(FhirError(422, f"{where}: {first.get('msg', 'invalid')}", "invalid", where))
        return await request_validation_exception_handler(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers a body its JSON parser gave up on (e.g. RecursionError on deeply
        # nested arrays) with a bare 400; it is bad input like any other: 422.
        if err.status_code == 400 and err.__cause__ is not None:
            reason = "nested too deeply" if isinstance(err.__cause__, RecursionError) else "not readable JSON"
            return invalid(["body"], f"the request body is {reason}", "json_invalid")
        if err.status_code == 413:
            limit = request.app.state.settings.api_max_body_bytes
            message = f"request body over the limit of {limit} bytes (RADFLOW_API_MAX_BODY_BYTES)"
            if request.url.path.startswith("/fhir"):
                return error_response(FhirError(413, message, "too-costly"))
            return _error(413, message, "PayloadTooLarge")
        return await http_exception_handler(request, err)


def _install_security(app: FastAPI, settings: Settings, audit: bool) -> None:
    # Added last = outermost: CORS answers preflights before the guard asks for a token.
    authenticator = Authenticator(settings)
    app.state.authenticator = authenticator
    openapi_security.install(app, authenticator.enforcing)
    app.state.audit_trail = app.state.audit_outbox = None
    api_audit = None
    if audit:
        app.state.audit_trail = trail = AuditTrail(settings.audit_log_path())
        api_audit = ApiAudit(trail, settings.api_trusted_proxies)
        app.state.audit_outbox = outbox = AuditOutbox.from_settings(settings)
        if outbox is not None:
            trail.on_append(outbox.wake)
    app.state.api_audit = api_audit  # the bulk route audits each order it acts on too
    app.add_middleware(Guard, authenticator=authenticator, audit=api_audit)
    if settings.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.api_cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"])
    codec_origins = [*settings.codec_cors_origins, *settings.api_cors_origins]
    if codec_origins:
        app.add_middleware(CodecCors, origins=codec_origins)


def create_app(
    settings: Settings | None = None,
    service: OrderService | None = None,
    routers: Sequence[APIRouter] = (),
    audit: bool = True,
    readiness: Readiness | None = None,
) -> FastAPI:
    """The API app. Without `service` the lifespan connects to Temporal from `settings`.

    Authentication is on when API keys or OIDC are configured (api/auth.py); the CLI refuses to
    serve without either unless RADFLOW_API_AUTH=none. Every non-public request is audited.
    """
    settings = settings or Settings()
    app = FastAPI(
        title="radflow",
        summary="Imaging orders as durable Temporal workflows",
        version="0.1.0",
        lifespan=_lifespan,
        # Starlette's limiter: a declared Content-Length over the limit is refused (413)
        # before a byte of the body is read; a chunked body as soon as it goes over.
        max_body_size=settings.api_max_body_bytes,
        docs_url=None,  # served by api/docs.py from local assets (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.codec = EncryptionCodec(load_keys(settings.codec_keys_file)) if settings.codec_keys_file else None
    # /readyz (api/routes/health.py): Temporal, plus whatever else the host process registers (`radflow dev`).
    app.state.readiness = readiness or Readiness()
    app.state.readiness.add("temporal", temporal_check(lambda: app.state.service.client if app.state.service else None))
    _install_security(app, settings, audit)
    app.add_middleware(TraceRequests)  # outermost: the span covers auth and audit too (api/tracing.py)
    for router in [*ROUTERS, *routers, docs_router(app)]:
        app.include_router(router)
    describe_builtin_schemas(app)
    _install_error_handlers(app)
    return app
