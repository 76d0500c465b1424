"""Liveness that means something: 200 only when Temporal answers."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from radflow.api.deps import SettingsDep
from radflow.api.schemas import HealthPublic
from radflow.infra.health import metrics_response, readyz_response

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def healthz(request: Request, settings: SettingsDep) -> JSONResponse:
    service = request.app.state.service
    health = HealthPublic(status="unavailable", temporal="unavailable", namespace=settings.temporal_namespace,
                          task_queue=settings.task_queue)
    if service is None:
        health.detail = "not connected to Temporal yet"
    else:
        health.namespace = service.client.namespace
        health.task_queue = service.task_queue
        try:
            ok = await service.client.service_client.check_health(timeout=timedelta(seconds=3))
        except Exception as err:  # any failure here means "not healthy", never a 500
            ok, health.detail = False, str(err)[:200]
        if ok:
            health.status = health.temporal = "ok"
    return JSONResponse(health.model_dump(), status_code=200 if health.status == "ok" else 503)


# Probe and scrape endpoints of the process (deploy/README.md "Health endpoints"), the same on every radflow
# process; not part of the API contract for integrators, so not in the OpenAPI document.
@router.get("/livez", response_class=PlainTextResponse, include_in_schema=False)
async def livez() -> PlainTextResponse:
    return PlainTextResponse("ok\n")


@router.get("/readyz", response_class=PlainTextResponse, include_in_schema=False)
async def readyz(request: Request) -> Response:
    return await readyz_response(request.app.state.readiness)


@router.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
async def metrics() -> Response:
    return metrics_response()
