"""One production role (`radflow worker|mllp|dicom`): health first, then Temporal, then the role.

The health/metrics listener starts before anything else, so an orchestrator sees the process
alive but not ready (503 "not connected to Temporal yet") while Temporal is down; the process
keeps retrying instead of exiting, and becomes ready once connected and its parts are up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from temporalio.client import Client

from radflow.components import Component
from radflow.infra.health import Readiness, health_component, temporal_check
from radflow.runner import banner_text, run_components
from radflow.infra.settings import Settings
from radflow.infra.telemetry import configure_tracing

log = logging.getLogger("radflow.serve")

RECONNECT_EVERY_S = 2.0

# Builds the role's components once connected; adds the role's readiness checks.
Build = Callable[[Client, Readiness], Sequence[Component]]


async def connect_until_up(settings: Settings) -> Client:
    from radflow.service.temporal import connect

    while True:
        try:
            return await connect(settings)
        except Exception as err:  # refused, TLS, DNS...: all mean "not yet"
            log.warning("temporal not reachable, retrying",
                        extra={"address": settings.temporal_address, "error": str(err)[:200]})
            await asyncio.sleep(RECONNECT_EVERY_S)


async def serve_role(settings: Settings, role: str, title: str, build: Build) -> int:
    configure_tracing(settings, settings.otel_service_name or f"radflow-{role}")
    readiness = Readiness()
    connected: list[Client] = []
    readiness.add("temporal", temporal_check(lambda: connected[0] if connected else None))

    async def after_connect() -> list[Component]:
        client = await connect_until_up(settings)
        connected.append(client)
        log.info("connected to temporal", extra={"address": settings.temporal_address})
        return list(build(client, readiness))

    health = health_component(settings, role, readiness)
    steps: list = [health] if health is not None else []
    return await run_components([*steps, after_connect], banner=lambda c: banner_text(title, c))
