"""The `radflow` command.

  radflow dev                  everything locally (Temporal dev server + UI, worker, MLLP, API)
  radflow demo                 the dev stack with demo destinations, one order through every protocol
  radflow worker|mllp|api      one production process each, against any Temporal cluster
  radflow dicom                the DICOM gateway (Verification, MWL, MPPS, Storage)
  radflow worklist-rebuild     re-sync the worklist read model from the open orders
  radflow setup                register radflow's search attributes in a namespace
  radflow send-hl7 FILE...     send HL7 v2 files over MLLP, print each ACK
  radflow orders ...           list/show/act on orders through the HTTP API

Flags override RADFLOW_* environment variables, which override defaults (radflow.infra.settings).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from radflow.infra.settings import Settings

log = logging.getLogger("radflow.cli")


# ---------------------------------------------------------------- settings from flags
def _temporal_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Temporal connection (override RADFLOW_TEMPORAL_*)")
    g.add_argument("--temporal-address", help="host:port of the Temporal frontend")
    g.add_argument("--namespace", help="Temporal namespace")
    g.add_argument("--task-queue", help="task queue of the order workflows")
    g.add_argument("--tls", action="store_true", default=None, help="use TLS (implied by --tls-ca/--tls-cert)")
    g.add_argument("--tls-cert", type=Path, help="client certificate (mTLS), PEM")
    g.add_argument("--tls-key", type=Path, help="client private key (mTLS), PEM")
    g.add_argument("--tls-ca", type=Path, help="server root CA, PEM")


def _health_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--health-port", type=int, help="port of /livez, /readyz, /metrics (default RADFLOW_HEALTH_PORT, "
                   "else per role: worker 9461, mllp 9462, dicom 9463; 0 = off)")


def _log_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", help="DEBUG shows PHI fields; INFO and above never do")
    p.add_argument("--log-format", choices=["kv", "json"])


_FLAG_TO_SETTING = {
    "temporal_address": "temporal_address",
    "namespace": "temporal_namespace",
    "task_queue": "task_queue",
    "tls": "temporal_tls",
    "tls_cert": "temporal_tls_cert",
    "tls_key": "temporal_tls_key",
    "tls_ca": "temporal_tls_ca",
    "log_level": "log_level",
    "log_format": "log_format",
    "data_dir": "data_dir",
    "temporal_port": "dev_temporal_port",
    "ui_port": "dev_ui_port",
    "mllp_port": "mllp_port",
    "api_port": "api_port",
    "bind": "dev_host",
    "dicom_port": "dicom_port",
    "health_port": "health_port",
}


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, then every flag the user gave on top."""
    values = {setting: getattr(args, flag) for flag, setting in _FLAG_TO_SETTING.items() if getattr(args, flag, None) is not None}
    return Settings().model_copy(update=values)


# ---------------------------------------------------------------- long-running commands
def _local_stack_settings(args: argparse.Namespace) -> Settings | None:
    """Settings of `radflow dev`/`demo`, or None (refusal printed) when their API may not run open."""
    settings = settings_from(args)
    _setup_logging(settings)
    refusal = api_auth_refusal(settings, loopback_may_run_open=True, host=settings.dev_host)
    if refusal:
        print(refusal, file=sys.stderr)
        return None
    return settings


def cmd_dev(args: argparse.Namespace) -> int:
    from radflow.dev import run_dev

    settings = _local_stack_settings(args)
    if settings is None:
        return 2
    return _run_forever(run_dev(settings, Path(settings.data_dir), headless=args.headless))


def cmd_demo(args: argparse.Namespace) -> int:
    from radflow.demo import run_demo

    settings = _local_stack_settings(args)
    if settings is None:
        return 2
    return _run_forever(run_demo(settings, Path(settings.data_dir), once=args.once, headless=args.headless))


def cmd_worker(args: argparse.Namespace) -> int:
    from radflow.components import WorkerComponent

    from radflow.infra.health import PeriodicComponent, refresh_order_gauges
    from radflow.serve import serve_role

    settings = settings_from(args)
    _setup_logging(settings)
    refusal = tls_refusal(settings, "ehr_mllp", "dicom_archive")
    if refusal:
        print(refusal, file=sys.stderr)
        return 2

    def build(client, readiness):  # noqa: ANN001, ANN202
        comp = WorkerComponent(client, settings)
        readiness.add(comp.name, comp.ready)
        if "worklist" in settings.sync_consumers:  # the worklist read model the worker writes
            from radflow.gateways.dicom.read_models import worklist_store
            from radflow.infra.health import store_check

            readiness.add("worklist store", store_check(lambda: worklist_store(settings), "worklist store"))
        gauges = PeriodicComponent("order-gauges", lambda: refresh_order_gauges(client, settings.metrics_refresh_s))
        return [comp, gauges]

    return _run_forever(serve_role(settings, "worker", "radflow worker is running", build))


def cmd_mllp(args: argparse.Namespace) -> int:
    from radflow.components import MllpComponent

    settings = settings_from(args)
    updates = {k: v for k, v in (("mllp_host", args.host), ("mllp_port", args.port)) if v}
    settings = settings.model_copy(update=updates)
    return _serve_gateway(settings, "mllp", "radflow MLLP gateway is running",
                          lambda svc: MllpComponent(svc, settings, settings.mllp_host, settings.mllp_port))


def _serve_gateway(settings: Settings, role: str, title: str, component: Callable[[Any], Any]) -> int:
    """Run one gateway component against Temporal until SIGINT/SIGTERM (health endpoint first)."""
    from radflow.serve import serve_role
    from radflow.service.wiring import order_service

    _setup_logging(settings)
    # The role names its listener's TLS settings; the DICOM gateway also runs the archive C-STORE client.
    refusal = tls_refusal(settings, role, *(["dicom_archive"] if role == "dicom" else []))
    if refusal:
        print(refusal, file=sys.stderr)
        return 2

    def build(client, readiness):  # noqa: ANN001, ANN202
        comp = component(order_service(client, settings))
        readiness.add(comp.name, comp.ready)
        return [comp]

    return _run_forever(serve_role(settings, role, title, build))


def cmd_api(args: argparse.Namespace) -> int:
    from radflow.api.app import create_app
    from radflow.components import ApiComponent
    from radflow.infra.tls import server_context

    settings = settings_from(args)
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    _setup_logging(settings)
    refusal = api_auth_refusal(settings) or tls_refusal(settings, "api")
    if refusal:
        print(refusal, file=sys.stderr)
        return 2

    async def run() -> int:
        from radflow.runner import banner_text, run_components

        from radflow.infra.health import PeriodicComponent, drain_periodically
        from radflow.infra.telemetry import configure_tracing

        configure_tracing(settings, settings.otel_service_name or "radflow-api")
        # The app connects in its lifespan and keeps retrying, answering 503 meanwhile.
        comp = ApiComponent(create_app(settings), host, port, tls=server_context(settings, "api"))
        drain = PeriodicComponent("temporal-metrics-drain", drain_periodically)
        return await run_components([drain, comp], banner=lambda c: banner_text("radflow API is running", c))

    return _run_forever(run())


def tls_refusal(settings: Settings, *sides: str) -> str:
    """Why the TLS settings of these listeners / clients cannot work ("" = they can, or they are plain TCP)."""
    from radflow.infra.tls import LISTENERS, TlsConfigError, client_context, server_context

    try:
        for side in sides:
            server_context(settings, side) if side in LISTENERS else client_context(settings, side)
    except TlsConfigError as err:
        return f"radflow: TLS misconfigured: {err}"
    return ""


def api_auth_refusal(settings: Settings, loopback_may_run_open: bool = False, host: str = "") -> str:
    """Why the API must not start with these settings ("" = it may). Never quotes a secret."""
    from radflow.api.auth import AuthConfigError, Authenticator

    try:
        auth = Authenticator(settings)
    except AuthConfigError as err:
        return f"radflow: API authentication misconfigured: {err}"
    if auth.configured or (loopback_may_run_open and _is_loopback(host)):
        return ""
    return ("radflow: refusing to serve the API without authentication. Configure RADFLOW_API_KEYS / "
            "RADFLOW_API_KEYS_FILE or OIDC (RADFLOW_OIDC_ISSUER, _AUDIENCE, _JWKS_URL), or set RADFLOW_API_AUTH=none "
            "to run it open on a trusted network (docs/security.md).")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_dicom(args: argparse.Namespace) -> int:
    from radflow.gateways.dicom.component import DicomComponent

    settings = settings_from(args)
    updates = {k: v for k, v in (("dicom_host", args.host), ("dicom_port", args.port), ("dicom_ae_title", args.ae_title)) if v}
    settings = settings.model_copy(update=updates)
    return _serve_gateway(settings, "dicom", "radflow DICOM gateway is running",
                          lambda svc: DicomComponent(svc, settings, settings.dicom_host, settings.dicom_port))


def cmd_worklist_rebuild(args: argparse.Namespace) -> int:
    from radflow.activities.worklist_sync import WorklistSync, rebuild_worklist
    from radflow.gateways.dicom.read_models import describe
    from radflow.service.wiring import order_service

    settings = settings_from(args)
    _setup_logging(settings)

    async def run() -> int:
        client = await _connect_or_none(settings)
        if client is None:
            return 1
        from radflow.progress import progress

        # The number of open orders is not known up front (visibility pages): the bar counts up.
        with progress(None, "worklist-rebuild") as advance:
            counts = await rebuild_worklist(client, WorklistSync.from_settings(settings), order_service(client, settings),
                                            advance=advance)
        print(f"{describe(settings)}: {counts['applied']} orders re-applied, {counts['hidden']} rows hidden, "
              f"{counts['failed']} orders unreadable")
        return 1 if counts["failed"] else 0

    return asyncio.run(run())


def cmd_setup(args: argparse.Namespace) -> int:
    from radflow.service.temporal import ensure_search_attributes

    settings = settings_from(args)
    _setup_logging(settings)

    async def run() -> int:
        client = await _connect_or_none(settings)
        if client is None:
            return 1
        added = await ensure_search_attributes(client)
        print(f"namespace {client.namespace}: " + (f"added {', '.join(added)}" if added else "search attributes already registered"))
        return 0

    return asyncio.run(run())


async def _connect_or_none(settings: Settings):  # noqa: ANN202 - temporalio Client
    from radflow.service.temporal import connect

    try:
        return await connect(settings)
    except Exception as err:
        log.error("cannot connect to temporal", extra={"address": settings.temporal_address, "error": str(err)[:300]})
        return None


def _run_forever(coro) -> int:  # noqa: ANN001
    """Run a process that hosts a worker, then leave without interpreter finalization."""
    from radflow.runner import hard_exit

    # Everything a server process creates (read models, spool, attachments, audit log, the dev
    # server's Temporal database) holds PHI: owner-only unless the operator widens it on purpose.
    os.umask(0o077)
    from radflow.infra.telemetry import flush_tracing

    try:
        code = asyncio.run(coro)
    except KeyboardInterrupt:
        code = 130
    flush_tracing()
    hard_exit(code)
    return code  # not reached


def _setup_logging(settings: Settings) -> None:
    from radflow.infra.logs import setup_logging

    setup_logging(settings.log_level, settings.log_format)


# ---------------------------------------------------------------- client commands
def cmd_send_hl7(args: argparse.Namespace) -> int:
    from radflow.hl7_files import send_files

    tls = None
    if args.tls or args.tls_ca or args.tls_cert:
        from radflow.infra.tls import TlsConfigError, make_client_context

        password = Settings().tls_key_password.get_secret_value() or None  # RADFLOW_TLS_KEY_PASSWORD, never a flag
        try:
            tls = make_client_context(args.tls_ca, args.tls_cert, args.tls_key, password=password, what="send-hl7")
        except TlsConfigError as err:
            print(f"radflow: {err}", file=sys.stderr)
            return 2
    return asyncio.run(send_files(args.files, args.host, args.port, timeout_s=args.timeout, raw=args.raw, tls=tls))


def cmd_orders(args: argparse.Namespace) -> int:
    from radflow.orders_cli import run_orders_command

    return run_orders_command(args)


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radflow", description="Imaging-order orchestrator on Temporal.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="run everything locally (Temporal dev server + UI, worker, MLLP, API)")
    dev.add_argument("--data-dir", type=Path, help="where the Temporal SQLite file lives (default .radflow)")
    dev.add_argument("--temporal-port", type=int, help="Temporal gRPC port (default 7233)")
    dev.add_argument("--ui-port", type=int, help="Temporal Web UI port (default 8233)")
    dev.add_argument("--mllp-port", type=int, help="HL7 MLLP port (default 2575)")
    dev.add_argument("--api-port", type=int, help="HTTP API port (default 8000)")
    dev.add_argument("--dicom-port", type=int, help="DICOM port (default 11112)")
    dev.add_argument("--bind", help="address every listener binds to (default 127.0.0.1)")
    dev.add_argument("--headless", action="store_true", help="no Temporal Web UI")
    _log_flags(dev)
    dev.set_defaults(func=cmd_dev)

    demo = sub.add_parser("demo", help="the dev stack with demo destinations (EHR sink, FHIR server, Orthanc) "
                                       "and one order driven through every protocol")
    demo.add_argument("--once", action="store_true", help="stop after the drive (exit 0 when the order ended DELIVERED)")
    demo.add_argument("--data-dir", type=Path, help="Temporal SQLite file, FHIR server and Orthanc data (default .radflow)")
    for flag, what in (("temporal", "Temporal gRPC port (default 7233)"), ("ui", "Temporal Web UI port (default 8233)"),
                       ("mllp", "HL7 MLLP port (default 2575)"), ("api", "HTTP API port (default 8000)"),
                       ("dicom", "DICOM port (default 11112)")):
        demo.add_argument(f"--{flag}-port", type=int, help=what)
    demo.add_argument("--bind", help="address every listener binds to (default 127.0.0.1)")
    demo.add_argument("--headless", action="store_true", help="no Temporal Web UI")
    _log_flags(demo)
    demo.set_defaults(func=cmd_demo)

    worker = sub.add_parser("worker", help="run a Temporal worker (order workflows + activities)")
    _temporal_flags(worker)
    _log_flags(worker)
    _health_flags(worker)
    worker.set_defaults(func=cmd_worker)

    mllp = sub.add_parser("mllp", help="run the HL7 v2 MLLP gateway")
    mllp.add_argument("--host", help="bind address (default RADFLOW_MLLP_HOST)")
    mllp.add_argument("--port", type=int, help="port (default RADFLOW_MLLP_PORT)")
    _temporal_flags(mllp)
    _log_flags(mllp)
    _health_flags(mllp)
    mllp.set_defaults(func=cmd_mllp)

    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", help="bind address (default RADFLOW_API_HOST)")
    api.add_argument("--port", type=int, help="port (default RADFLOW_API_PORT)")
    _temporal_flags(api)
    _log_flags(api)
    api.set_defaults(func=cmd_api)

    dicom = sub.add_parser("dicom", help="run the DICOM gateway (Verification, MWL, MPPS, Storage)")
    dicom.add_argument("--host", help="bind address (default RADFLOW_DICOM_HOST)")
    dicom.add_argument("--port", type=int, help="port (default RADFLOW_DICOM_PORT, 11112)")
    dicom.add_argument("--ae-title", help="our AE title (default RADFLOW_DICOM_AE_TITLE, RADFLOW)")
    dicom.add_argument("--data-dir", type=Path, help="worklist/MPPS/spool files, shared with the worker (default .radflow)")
    _temporal_flags(dicom)
    _log_flags(dicom)
    _health_flags(dicom)
    dicom.set_defaults(func=cmd_dicom)

    rebuild = sub.add_parser("worklist-rebuild", help="re-apply every open order to the worklist read model")
    rebuild.add_argument("--data-dir", type=Path, help="where worklist.db lives (default .radflow)")
    _temporal_flags(rebuild)
    _log_flags(rebuild)
    rebuild.set_defaults(func=cmd_worklist_rebuild)

    setup = sub.add_parser("setup", help="register radflow's search attributes in the namespace")
    _temporal_flags(setup)
    _log_flags(setup)
    setup.set_defaults(func=cmd_setup)

    send = sub.add_parser("send-hl7", help="send HL7 v2 messages from files over MLLP and print each ACK")
    send.add_argument("files", nargs="+", type=Path, metavar="FILE")
    send.add_argument("--host", default="127.0.0.1")
    send.add_argument("--port", type=int, default=Settings().mllp_port)
    send.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each ACK")
    send.add_argument("--raw", action="store_true", help="send each file unchanged as one message")
    send.add_argument("--tls", action="store_true", help="MLLP over TLS (implied by --tls-ca/--tls-cert)")
    send.add_argument("--tls-ca", type=Path, help="CA the server certificate must chain to, PEM (default: system store)")
    send.add_argument("--tls-cert", type=Path, help="client certificate, PEM (key password: RADFLOW_TLS_KEY_PASSWORD)")
    send.add_argument("--tls-key", type=Path, help="client private key, PEM")
    send.set_defaults(func=cmd_send_hl7)

    from radflow.orders_cli import add_orders_parser

    add_orders_parser(sub).set_defaults(func=cmd_orders)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from radflow.infra.secret_files import KeyFileError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyFileError as err:  # a payload / search key file refused: say why, no traceback
        print(f"radflow: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
