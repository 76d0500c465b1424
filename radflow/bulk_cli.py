"""`radflow orders retry|skip|cancel` by filter (no accession): match, then act order by order.

The API matches (`POST /bulk/orders/{action}` with dry_run: visibility, then each order's exact
state); the CLI then calls each order's own route (`POST /orders/{acc}/{action}`), a few at a
time, with one Idempotency-Key for the whole run (a re-run of the same invocation after a
transport error applies once per order), and draws a progress bar while it does.
"""

from __future__ import annotations

import argparse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from radflow.progress import progress

FILTER_FLAGS = {  # flag dest -> API filter field
    "f_status": "status", "lane": "lane", "f_station": "station", "f_modality": "modality", "f_procedure": "procedure",
    "f_needs_attention": "needs_attention", "created_from": "created_from", "created_to": "created_to",
    "updated_from": "updated_from", "updated_to": "updated_to",
}


def add_filter_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("by filter (instead of an accession; at least one)")
    g.add_argument("--status", dest="f_status", help="order status, e.g. REPORTED")
    g.add_argument("--station", dest="f_station", help="scheduled station AE title")
    g.add_argument("--modality", dest="f_modality", help="scheduled modality")
    g.add_argument("--procedure", dest="f_procedure", help="requested procedure code")
    g.add_argument("--needs-attention", dest="f_needs_attention", action="store_true", default=None,
                   help="only orders with a lane waiting for an operator")
    g.add_argument("--created-from", help="created at or after (ISO 8601)")
    g.add_argument("--created-to", help="created at or before")
    g.add_argument("--updated-from", help="last changed at or after")
    g.add_argument("--updated-to", help="last changed at or before")
    g.add_argument("--dry-run", action="store_true", help="list what matches; change nothing")
    g.add_argument("--concurrency", type=int, default=4, help="orders acted on at once (default 4)")


def filter_of(args: argparse.Namespace) -> dict[str, Any]:
    return {field: getattr(args, flag) for flag, field in FILTER_FLAGS.items() if getattr(args, flag, None) not in (None, "")}


def uses_filter(args: argparse.Namespace) -> bool:
    """Any filter-only flag given (--lane also names the lane of a single order's action)."""
    return any(getattr(args, flag, None) not in (None, "") for flag in FILTER_FLAGS if flag != "lane") or args.dry_run


@dataclass
class Outcome:
    accession: str
    outcome: str  # done | refused | failed
    detail: str


def run_bulk(http: httpx.Client, args: argparse.Namespace, check: Any) -> dict[str, Any]:
    """Match, then (unless --dry-run) act on each matched order; the summary as a dict."""
    action = args.orders_command
    if not filter_of(args):
        raise UsageError(f"give an accession, or filter flags to {action} every order they match")
    note = (args.reason if action == "cancel" else args.note) or ""
    if not args.dry_run and not note.strip():
        raise UsageError(f"a bulk {action} needs {'--reason' if action == 'cancel' else '--note'} (why)")
    match = check(http.post(f"/bulk/orders/{action}", json={"filter": filter_of(args), "dry_run": True, "note": note}))
    summary: dict[str, Any] = {
        "action": action, "dry_run": args.dry_run, "candidates": match["candidates"], "matched": match["matched"],
        "not_matching": match["not_matching"], "visibility_asked": match["visibility_asked"],
        "results": [r | {"status": None} for r in match["results"]],  # candidates whose state was unreadable
    }
    if not args.dry_run and match["matched"]:
        key = f"cli-bulk-{uuid.uuid4().hex}"
        body = {"reason": note} if action == "cancel" else {"note": note, "lane": args.lane or ""}

        def act(accession: str) -> Outcome:
            return _act(http, f"/orders/{accession}/{action}", accession, body, key)

        with progress(len(match["matched"]), f"{action}") as advance, \
                ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
            outcomes = []
            for outcome in pool.map(lambda a: _tick(act(a), advance), match["matched"]):
                outcomes.append(outcome)
        summary["results"] = [vars(o) for o in outcomes] + summary["results"]
    for kind in ("done", "refused", "failed"):
        summary[kind] = sum(r["outcome"] == kind for r in summary["results"])
    return summary


class UsageError(Exception):
    pass


def _tick(outcome: Outcome, advance: Any) -> Outcome:
    advance(1)
    return outcome


def _act(http: httpx.Client, path: str, accession: str, body: dict[str, str], key: str) -> Outcome:
    try:
        resp = http.post(path, json=body, headers={"Idempotency-Key": key})
    except httpx.TransportError as err:
        return Outcome(accession, "failed", f"API unreachable: {err}")
    if resp.is_success:
        got = resp.json()
        lanes = ", ".join(f"{k}: {v}" for k, v in (got.get("lanes") or {}).items())
        return Outcome(accession, "done", f"{got.get('status')}" + (f" ({lanes})" if lanes else ""))
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    kind = "failed" if resp.status_code >= 500 else "refused"
    return Outcome(accession, kind, f"{resp.status_code} {detail}"[:300])


def render(summary: dict[str, Any]) -> str:
    action = summary["action"]
    lines = []
    lag = " (visibility asked twice: its first answer was empty)" if summary["visibility_asked"] > 1 else ""
    head = f"{action}: {len(summary['matched'])} order(s) matched of {summary['candidates']} candidate(s){lag}"
    lines.append(head + (" - dry run, nothing changed" if summary["dry_run"] else ""))
    if summary["dry_run"]:
        lines += [f"  would {action} {acc}" for acc in summary["matched"]]
    for acc, why in sorted(summary["not_matching"].items()):
        lines.append(f"  not matching any more: {acc} ({why})")
    for r in sorted(summary["results"], key=lambda r: (r["outcome"], r["accession"])):
        if r["outcome"] != "done":
            lines.append(f"  {r['outcome']}: {r['accession']}: {r['detail']}")
    lines.append(f"{action}: done {summary['done']}, refused {summary['refused']}, failed {summary['failed']}")
    return "\n".join(lines)
