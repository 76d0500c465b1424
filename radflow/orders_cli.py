"""`radflow orders ...`: an operator's view of orders, through the HTTP API (never Temporal directly).

Exit codes: 0 done, 1 the API refused (401 no/invalid RADFLOW_API_TOKEN, 403 role missing,
404 unknown order, 409 refused, 422 bad input,
503 Temporal down) or, by filter, some order refused or failed; 2 the API could not be reached
or the command line is incomplete.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import uuid
from typing import Any

import httpx

from radflow.bulk_cli import UsageError, add_filter_flags, render as render_bulk, run_bulk, uses_filter
from radflow.infra.settings import Settings


def add_orders_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    orders = sub.add_parser("orders", help="list, show and act on orders through the HTTP API")
    orders.add_argument("--api", default=None, help="API base URL (default RADFLOW_API_URL or http://localhost:8000)")
    orders.add_argument("--json", action="store_true", help="print the API's JSON instead of text")
    osub = orders.add_subparsers(dest="orders_command", required=True, metavar="ACTION")

    ls = osub.add_parser("list", help="list orders (from Temporal visibility: eventually consistent)")
    ls.add_argument("--status")
    ls.add_argument("--patient", help="MRN")
    ls.add_argument("--accession")
    ls.add_argument("--modality")
    ls.add_argument("--station", help="scheduled station AE title")
    ls.add_argument("--from", dest="scheduled_from", help="scheduled start >= (ISO 8601)")
    ls.add_argument("--to", dest="scheduled_to", help="scheduled start <= (ISO 8601)")
    ls.add_argument("--needs-attention", action="store_true", default=None)
    ls.add_argument("--page-size", type=int, default=50)
    ls.add_argument("--all", action="store_true", help="follow next_page_token to the end")

    for name, text in [("show", "an order's status, patient, procedure, schedule and flags"), ("timeline", "an order's timeline")]:
        osub.add_parser(name, help=text).add_argument("accession")
    for name in ("retry", "skip"):
        p = osub.add_parser(name, help=f"operator {name} of the lane(s) of an order (or of every order a filter matches) "
                                       "waiting for an operator")
        p.add_argument("accession", nargs="?", help="the order; without it, every order the filter flags match")
        p.add_argument("--note", default="", help="why (required by filter)")
        p.add_argument("--lane", default="", help="worklist, fhir, hl7 or archive (default: every waiting lane); "
                                                  "by filter: only orders whose lane waits")
        add_filter_flags(p)
    cancel = osub.add_parser("cancel", help="cancel an order (or every order a filter matches)")
    cancel.add_argument("accession", nargs="?", help="the order; without it, every order the filter flags match")
    cancel.add_argument("--reason", default="", help="why (required by filter)")
    cancel.add_argument("--lane", default="", help="by filter: only orders whose lane waits for an operator")
    add_filter_flags(cancel)
    sched = osub.add_parser("schedule", help="schedule an order that arrived without a schedule")
    sched.add_argument("accession")
    sched.add_argument("--station", default="", help="station AE title")
    sched.add_argument("--modality", default="")
    sched.add_argument("--start", required=True, help="ISO 8601 start time")
    return orders


CLIENT_USER_HEADER = "X-Radflow-Client-User"


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): the uid still says something
        return f"uid:{os.getuid()}"


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def run_orders_command(args: argparse.Namespace) -> int:
    settings = Settings()
    base = args.api or settings.api_url
    # The token comes from the environment only: argv is visible to every user (ps, /proc).
    token = settings.api_token.get_secret_value()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # Who at this terminal: the API's audit records it as `client_user`, a detail it never trusts.
    headers[CLIENT_USER_HEADER] = os_user()
    try:
        with httpx.Client(base_url=base, timeout=30.0, headers=headers) as http:
            body = _call(http, args)
    except ApiError as err:
        print(f"error {err.status}: {err}", file=sys.stderr)
        return 1
    except UsageError as err:
        print(f"radflow orders: {err}", file=sys.stderr)
        return 2
    except httpx.TransportError as err:
        print(f"cannot reach the radflow API at {base}: {err}", file=sys.stderr)
        return 2
    bulk = _is_bulk(args)
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        print(render_bulk(body) if bulk else _render(args.orders_command, body))
    # By filter: 1 when any order refused or failed (scripts notice), the summary says which.
    return 1 if bulk and (body["refused"] or body["failed"]) else 0


def _is_bulk(args: argparse.Namespace) -> bool:
    return args.orders_command in ("retry", "skip", "cancel") and args.accession is None


def _call(http: httpx.Client, args: argparse.Namespace) -> Any:
    cmd = args.orders_command
    if cmd == "list":
        return _list(http, args)
    if _is_bulk(args):
        return run_bulk(http, args, _check)
    if cmd in ("retry", "skip", "cancel") and uses_filter(args):
        raise UsageError("give an accession or filter flags, not both")
    acc = args.accession
    if cmd == "show":
        return _check(http.get(f"/orders/{acc}"))
    if cmd == "timeline":
        return _check(http.get(f"/orders/{acc}/timeline"))
    # One key per invocation: if the command is re-run after a timeout it is a new request,
    # but a transport-level retry inside this call would be applied once.
    headers = {"Idempotency-Key": f"cli-{uuid.uuid4().hex}"}
    if cmd in ("retry", "skip"):
        return _check(http.post(f"/orders/{acc}/{cmd}", json={"note": args.note, "lane": args.lane}, headers=headers))
    if cmd == "cancel":
        return _check(http.post(f"/orders/{acc}/cancel", json={"reason": args.reason}, headers=headers))
    if cmd == "schedule":
        payload = {"station_ae": args.station, "modality": args.modality, "start": args.start}
        return _check(http.post(f"/orders/{acc}/schedule", json=payload, headers=headers))
    raise AssertionError(cmd)


def _list(http: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    params = {
        k: v
        for k, v in {
            "status": args.status, "patient": args.patient, "accession": args.accession, "modality": args.modality,
            "station": args.station, "scheduled_from": args.scheduled_from, "scheduled_to": args.scheduled_to,
            "needs_attention": "true" if args.needs_attention else None, "page_size": args.page_size,
        }.items()
        if v is not None
    }
    orders: list[dict[str, Any]] = []
    token = None
    while True:
        body = _check(http.get("/orders", params=params | ({"next_page_token": token} if token else {})))
        orders += body["orders"]
        token = body.get("next_page_token")
        if not token or not args.all:
            return {"orders": orders, "next_page_token": token}


def _check(resp: httpx.Response) -> Any:
    if resp.is_success:
        return resp.json()
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}" for d in detail)
    raise ApiError(resp.status_code, str(detail))


def _render(cmd: str, body: Any) -> str:
    if cmd == "list":
        return _render_list(body)
    if cmd == "show":
        return _render_order(body)
    if cmd == "timeline":
        lines = [f"timeline of {body['accession']}"]
        for e in body["entries"]:
            mark = "!" if e["exception"] else " "
            ctl = f" [{e['control_id']}]" if e["control_id"] else ""
            lines.append(f"{mark} {e['at']}  {e['source']:<8} {e['kind']:<20} {e['summary']}{ctl}  -> {e['status'] or ''}")
        return "\n".join(lines)
    if cmd in ("retry", "skip"):
        lanes = ", ".join(f"{k}: {v}" for k, v in body.get("lanes", {}).items())
        return f"{body['accession']}: operator {body['action']} accepted, status {body['status']}" + (f" ({lanes})" if lanes else "")
    changed = "changed" if body.get("changed") else "no change"
    return f"{body['accession']}: {body['status']} ({changed}) {body.get('message', '')}".rstrip()


def _render_list(body: dict[str, Any]) -> str:
    rows = [("ACCESSION", "STATUS", "MODALITY", "STATION", "SCHEDULED", "FLAGS")]
    for o in body["orders"]:
        flags = ",".join((["NEEDS_ATTENTION"] if o["needs_attention"] else []) + o["overdue"])
        rows.append((o["accession"], o["status"], o["modality"], o["station_ae"], o["scheduled_start"] or "-", flags or "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"{len(body['orders'])} order(s)" + ("; more: use --all" if body.get("next_page_token") else ""))
    return "\n".join(lines)


def _documents(report: dict[str, Any] | None) -> str:
    docs = (report or {}).get("attachments") or []
    return "".join(f"; document {d['content_type']} {d['size']} B {d['title']}".rstrip() for d in docs)


def _render_order(o: dict[str, Any]) -> str:
    p, proc, s, f = o["patient"], o["procedure"], o["schedule"], o["flags"]
    status = o["status"] if o["status"] == o["clinical_status"] else f"{o['status']} (clinically {o['clinical_status']})"
    lines = [
        f"order {o['accession']}: {status}",
        f"  patient    {p['name']}  MRN {p['mrn']}{'^^^' + p['issuer'] if p['issuer'] else ''}  born {p['birth_date'] or '-'}  sex {p['sex'] or '-'}",
        f"  procedure  {proc['code']} {proc['text']}".rstrip(),
        f"  schedule   {s['station_ae'] or '-'} {s['modality'] or ''} at {s['start'] or '-'}",
        f"  report     {o['report_status'] or '-'}{_documents(o.get('report'))}",
        *[f"  study      {st['study_instance_uid'] or '-'} ({st['series_count']} series, {st['instance_count']} instances)"
          for st in (o.get("studies") or [o["study"]])],
        f"  flags      overdue={','.join(f['overdue']) or '-'} exceptions={f['exceptions']}",
    ]
    if f["needs_attention"]:
        lines.append(f"  ATTENTION  {f['attention_step']}: {f['attention_reason']} (since {f['attention_since']})")
    for name, lane in o.get("lanes", {}).items():
        waiting = f"WAITING FOR OPERATOR: {lane['attention_reason']}" if lane["needs_attention"] else lane["last"] or "idle"
        lines.append(f"  lane       {name}: {waiting}")
    if o["deliveries"]:
        lines.append("  delivered  " + ", ".join(f"{k}={v}" for k, v in o["deliveries"].items()))
    return "\n".join(lines)
