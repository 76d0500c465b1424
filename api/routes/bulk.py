"""POST /bulk/orders/{action}: retry, skip or cancel every order a filter matches.

Not under /orders/: `/orders/bulk/cancel` is already the cancel of an order whose accession is
"bulk". Each order is acted on through the same code as its single-order route (api/order_actions.py)
with the request's control id, so a retried request (same Idempotency-Key) applies once per
order; each order acted on gets its own audit lines (attempt, outcome) besides the request's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from radflow.api import order_actions as actions
from radflow.api.deps import ActorDep, ControlIdDep, ServiceDep, SettingsDep
from radflow.api.responses import TOO_LARGE, UNAVAILABLE
from radflow.api.schemas import BulkItemPublic, BulkRequest, BulkResultPublic
from radflow.infra.audit_trail import AuditUnavailable
from radflow.service.bulk import BulkFilter, bounded, match_orders
from radflow.service.order_search import InvalidFilter
from radflow.service.ordering import EventRejected, OrderNotFound, OrderService, TemporalUnavailable

log = logging.getLogger("radflow.api")

router = APIRouter(prefix="/bulk", tags=["bulk"])


class BulkAction(StrEnum):
    retry = "retry"
    skip = "skip"
    cancel = "cancel"


@router.post(
    "/orders/{action}",
    response_model=BulkResultPublic,
    responses={**TOO_LARGE, **UNAVAILABLE},
    summary="Retry, skip or cancel every order a filter matches (dry_run lists them only)",
    description=(
        "Candidates come from Temporal visibility (eventually consistent; an empty first answer is asked "
        "again); each candidate's exact state is then checked against the whole filter, and only those that "
        "match are acted on, each exactly as by its single-order route (validation by the order, timeline entry "
        "with the caller and the note). A filter with more candidates than RADFLOW_BULK_MAX_ORDERS is refused "
        "(422 too_many_orders) before anything is done. 200 even when some orders refused or failed: see "
        "`results` and the counts. Repeat with the same Idempotency-Key to retry the failed ones safely."
    ),
)
async def bulk_action(
    action: Annotated[BulkAction, Path(description="retry, skip or cancel")],
    body: BulkRequest, request: Request, service: ServiceDep, settings: SettingsDep, control_id: ControlIdDep,
    actor: ActorDep,
) -> BulkResultPublic | JSONResponse:
    flt = BulkFilter(**body.filter.model_dump())
    try:
        match = await match_orders(service, flt, limit=settings.bulk_max_orders, concurrency=settings.bulk_concurrency)
    except InvalidFilter as err:
        if err.__cause__ is not None:
            raise  # Temporal's own refusal: the app's handler words it
        from radflow.api.app import invalid

        kind = "too_many_orders" if "more than" in str(err) else "invalid_filter"
        return invalid(["body", "filter"], str(err), kind)
    results = [BulkItemPublic(accession=a, outcome="failed", detail=f"state unreadable: {why}")
               for a, why in match.unreadable.items()]
    if not body.dry_run:
        lane = body.lane or flt.lane or ""
        audited = _Audited(request, action)
        calls = [lambda a=a: audited(a, lambda: _act(service, action, a, body.note, lane, control_id, actor))
                 for a in match.matched]
        results = await bounded(settings.bulk_concurrency, calls) + results
    counts = {k: sum(r.outcome == k for r in results) for k in ("done", "refused", "failed")}
    log.info("bulk action", extra={"action": action.value, "dry_run": body.dry_run, "candidates": match.candidates,
                                   "matched": len(match.matched), **counts})
    return BulkResultPublic(action=action.value, dry_run=body.dry_run, candidates=match.candidates, matched=match.matched,
                            not_matching=match.not_matching, visibility_asked=match.visibility_asked, results=results,
                            **counts)


async def _act(service: OrderService, action: BulkAction, accession: str, note: str, lane: str, control_id: str,
               actor: str) -> BulkItemPublic:
    try:
        if action is BulkAction.cancel:
            done = await actions.cancel(service, accession, note, control_id, actor)
            return BulkItemPublic(accession=accession, outcome="done", status=done.status,
                                  detail=("cancelled" if done.changed else "no change") + (f": {done.message}" if done.message else ""))
        result = await actions.operator(service, accession, action.value, note, lane, control_id, actor)
        detail = ", ".join(f"{k}: {v}" for k, v in result.lanes.items())
        return BulkItemPublic(accession=accession, outcome="done", status=result.status, detail=detail)
    except EventRejected as err:
        return BulkItemPublic(accession=accession, outcome="refused", detail=str(err)[:300])
    except OrderNotFound:
        return BulkItemPublic(accession=accession, outcome="refused", detail="unknown order")
    except TemporalUnavailable as err:
        return BulkItemPublic(accession=accession, outcome="failed", detail=str(err)[:300])
    except Exception as err:  # one order's surprise must not hide the others' outcomes
        log.exception("bulk action failed for one order", extra={"accession": accession})
        return BulkItemPublic(accession=accession, outcome="failed", detail=type(err).__name__)


_AUDIT_STATUS = {"done": 200, "refused": 409, "failed": 503}


class _Audited:
    """One audit line per order acted on, like its single-order route gets: the attempt before the
    change (not written: the order is not touched), the outcome after (besides the request's own lines)."""

    def __init__(self, request: Request, action: BulkAction) -> None:
        from radflow.api.guard import PRINCIPAL_KEY

        self.audit = getattr(request.app.state, "api_audit", None)
        self.request, self.action = request, action
        self.principal = request.scope.get(PRINCIPAL_KEY)
        self.headers = {k.lower(): v for k, v in request.headers.items()}

    async def __call__(self, accession: str, act: Callable[[], Awaitable[BulkItemPublic]]) -> BulkItemPublic:
        if self.audit is None:
            return await act()
        entry = self.audit.describe(self.request.scope, self.headers, self.principal, "POST",
                                    f"/orders/{accession}/{self.action.value}", f"/bulk/orders/{self.action.value}",
                                    {"accession": accession})
        try:
            attempt_id = (await asyncio.to_thread(self.audit.attempt, entry))["id"]
        except AuditUnavailable:
            log.error("audit record not written", extra={"accession": accession, "bulk_action": self.action.value})
            return BulkItemPublic(accession=accession, outcome="failed", detail="audit trail unavailable: not applied")
        result = await act()
        try:
            await asyncio.to_thread(self.audit.outcome, entry, _AUDIT_STATUS[result.outcome], {}, attempt_id)
        except AuditUnavailable:
            log.error("audit record not written", extra={"accession": accession, "bulk_action": self.action.value})
        return result
