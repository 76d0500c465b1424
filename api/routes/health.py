"""Liveness that means something: 200 only when Temporal answers."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import SettingsDep
from api.schemas import HealthPublic

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
