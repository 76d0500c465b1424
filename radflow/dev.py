"""`radflow dev`: the whole stack in one process on one machine, for trying radflow out.

Temporal's dev server (SQLite file under the data dir, so orders survive a restart, with
radflow's search attributes and the Web UI), then a worker, the inbound gateways and the
HTTP API, all against that server. Everything binds to `dev_host` (loopback by default).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from radflow.api.app import create_app
from radflow.service.codec import ensure_keys_file
from radflow.components import ApiComponent, Component, TemporalDevComponent, WorkerComponent, gateway_components
from radflow.devstack import DevServer
from radflow.infra.health import PeriodicComponent, Readiness, drain_periodically, refresh_order_gauges
from radflow.service.ordering import OrderService
from radflow.service.patient_search import ensure_hmac_key_file
from radflow.runner import banner_text, run_components
from radflow.infra.settings import Settings
from radflow.infra.telemetry import configure_tracing
from radflow.service.temporal import connect, ensure_search_attributes
from radflow.infra.tls import server_context
from radflow.service.wiring import order_service

DB_FILE = "temporal.db"
LOG_FILE = "temporal.log"


def dev_settings(settings: Settings, server: DevServer) -> Settings:
    """The same settings, pointed at the embedded server (plain TCP, default namespace).

    Without a FHIR server the FHIR sync lane is left out of new orders: every order change
    would otherwise cost one Temporal activity only to answer "not configured" (a new order:
    17 history events and 2 workflow tasks instead of 11 and 1). One process
    has one configuration, so the lane cannot be missing where a FHIR server is set; split
    deployments choose their consumers with RADFLOW_SYNC_CONSUMERS.
    """
    unconfigured = [] if settings.fhir_base_url else ["fhir"]
    return settings.model_copy(update={
        "sync_consumers": [c for c in settings.sync_consumers if c not in unconfigured],
        "temporal_address": server.address,
        "temporal_namespace": "default",
        "temporal_tls": False,
        "temporal_tls_cert": None,
        "temporal_tls_key": None,
        "temporal_tls_ca": None,
        "temporal_api_key": None,
        "worker_spool_archive": True,  # one host: orders whose images predate gateway queues still archive
        # The Temporal UI's links to an order point at this stack's API unless a URL was configured.
        "api_url": settings.api_url if "api_url" in settings.model_fields_set else
        f"{'https' if settings.api_tls_cert else 'http'}://{settings.dev_host}:{settings.api_port}",
    })


def destinations_warning(settings: Settings) -> str:
    """Say so when no report destination is configured: orders then end COMPLETED, never DELIVERED."""
    configured = {"hl7": bool(settings.ehr_mllp_host), "fhir": bool(settings.fhir_base_url)}
    if any(configured.get(c) for c in settings.report_consumers):
        return ""
    return ("WARNING: no report destination is configured (set RADFLOW_EHR_MLLP_HOST/PORT or RADFLOW_FHIR_BASE_URL): "
            "reports are kept but delivered nowhere, and finished orders end COMPLETED, not DELIVERED.")


CODEC_KEYS_FILE = "codec-keys"
SEARCH_HMAC_KEY_FILE = "search-hmac.key"


def dev_encryption(settings: Settings, data_dir: Path) -> Settings:
    """Payload keys and the search HMAC key, generated into the data dir on first start (0600) and
    reused after; the UI's origin may call the codec server. Configured files win."""
    if not settings.dev_encryption:
        return settings
    update: dict[str, object] = {}
    if settings.codec_keys_file is None:
        ensure_keys_file(data_dir / CODEC_KEYS_FILE)
        update["codec_keys_file"] = data_dir / CODEC_KEYS_FILE
    if settings.search_hmac_key_file is None:
        ensure_hmac_key_file(data_dir / SEARCH_HMAC_KEY_FILE)
        update["search_hmac_key_file"] = data_dir / SEARCH_HMAC_KEY_FILE
    origins = [f"http://{h}:{settings.dev_ui_port}" for h in dict.fromkeys([settings.dev_host, "localhost"])]
    update["codec_cors_origins"] = [*settings.codec_cors_origins, *origins]
    return settings.model_copy(update=update)


def codec_endpoint(settings: Settings) -> str | None:
    """Where the UI's browser finds the codec server (the dev API), when payloads are encrypted."""
    scheme = "https" if settings.api_tls_cert else "http"
    return f"{scheme}://{settings.dev_host}:{settings.api_port}/codec" if settings.codec_keys_file else None


def encryption_notice(settings: Settings) -> str:
    if settings.codec_keys_file is None:
        return "NOTICE: Temporal payloads are NOT encrypted (RADFLOW_DEV_ENCRYPTION=false): PHI is in clear in Temporal."
    return (f"Payloads encrypted (keys {settings.codec_keys_file}); the Web UI decodes them through "
            f"{codec_endpoint(settings)}")


def auth_notice(settings: Settings) -> str:
    """Say so when the API is open (allowed on loopback only; the CLI refuses it elsewhere)."""
    from radflow.api.auth import Authenticator

    auth = Authenticator(settings)
    if auth.enforcing:
        return auth.describe()
    return (f"NOTICE: the API on {settings.dev_host} is OPEN (no authentication; every caller is admin). "
            "Set RADFLOW_API_KEYS before exposing it (docs/security.md).")


# `radflow demo` adds components around the stack: `before` start first (its destinations),
# `after(settings, service)` once the stack is up (the demo's drive).
AfterStack = Callable[[Settings, OrderService], list[Component]]


async def run_dev(settings: Settings, data_dir: Path, headless: bool = False, *, before: Sequence[Component] = (),
                  after: AfterStack | None = None, title: str = "radflow dev is running") -> int:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    host = settings.dev_host
    settings = dev_encryption(settings, data_dir)
    server = DevServer(
        db_file=data_dir / DB_FILE,
        port=settings.dev_temporal_port,
        ui_port=None if headless else settings.dev_ui_port,
        host=host,
        log_file=data_dir / LOG_FILE,
        ui_codec_endpoint=codec_endpoint(settings),
    )
    settings = dev_settings(settings, server)
    configure_tracing(settings, settings.otel_service_name or "radflow-dev")

    async def after_temporal() -> list[Component]:
        client = await connect(settings)
        await ensure_search_attributes(client)  # start-dev registered them; this checks it
        service = order_service(client, settings)
        # One process: the API's /readyz answers for every component, /metrics for all of them.
        readiness = Readiness()
        parts: list[Component] = [WorkerComponent(client, settings), *gateway_components(settings, service, host)]
        for part in parts:
            readiness.add(part.name, part.ready)  # type: ignore[attr-defined]
        return [
            *parts,
            ApiComponent(create_app(settings, service, readiness=readiness), host, settings.api_port,
                         tls=server_context(settings, "api")),
            PeriodicComponent("temporal-metrics-drain", drain_periodically),
            PeriodicComponent("order-gauges", lambda: refresh_order_gauges(client, settings.metrics_refresh_s)),
            *(after(settings, service) if after else []),
        ]

    def kill_server() -> None:
        if server.process is not None and server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)

    def banner(components: list[Component]) -> str:
        text = banner_text(f"{title} (data dir {data_dir}, task queue {settings.task_queue})", components)
        warnings = [w for w in (auth_notice(settings), encryption_notice(settings), destinations_warning(settings)) if w]
        return "\n".join([text, *warnings])

    return await run_components([*before, TemporalDevComponent(server), after_temporal], banner=banner,
                                on_second_signal=kill_server)
