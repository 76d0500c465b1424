"""`sync_worklist`: mirror one order into the Modality Worklist read model.

The workflow runs it after every applied change when the order's policy lists the
"worklist" sync consumer. Each call carries the whole order snapshot, so it is
idempotent and order-independent (a row keeps the newest snapshot by version).

Rebuild: the workflows are the source of truth. `rebuild_worklist` re-applies the state
of every open order and hides rows of orders that are no longer open; run it after
losing or restoring the read model (SQLite file or PostgreSQL database).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import tzinfo
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.client import Client

from radflow.domain import definitions as d
from radflow.domain.dicom.mwl import entry_from_state, version_of
from radflow.domain.order import OrderState, StepRequest, StepResult
from radflow.gateways.dicom.read_models import WorklistReadModel, worklist_store
from radflow.service.ordering import OrderError, OrderNotFound, OrderService
from radflow.infra.settings import Settings

log = logging.getLogger("radflow.worklist")


def site_timezone(settings: Settings) -> tzinfo | None:
    name = settings.mwl_timezone or settings.hl7_default_timezone
    return ZoneInfo(name) if name else None


class WorklistSync:
    def __init__(self, store: WorklistReadModel, tz: tzinfo | None = None) -> None:
        self.store = store
        self.tz = tz

    @classmethod
    def from_settings(cls, settings: Settings) -> WorklistSync:
        return cls(worklist_store(settings), site_timezone(settings))

    def apply_state(self, state: OrderState) -> tuple[bool, str]:
        entry = entry_from_state(state, self.tz)
        if entry.cut_keywords:
            # Keywords only: the values may be names or ids (PHI), and this runs on every change.
            log.debug("worklist values cut to their VR length", extra={
                "accession": entry.accession, "cut_count": len(entry.cut_keywords),
                "cut_keywords": ",".join(sorted(set(entry.cut_keywords)))})
        # With the row, when the order closed (and what it stored outside the row): the retention
        # purge's clock (radflow/service/retention.py). A correction reopening it takes the note back.
        applied = self.store.sync(entry, version_of(state.closed_at) if state.closed_at else "",
                                  [a.sha256 for a in (state.report.attachments if state.report else []) if a.sha256])
        return applied, entry.sps_status

    @activity.defn(name=d.SYNC_ACTIVITIES["worklist"])
    async def sync_worklist(self, req: StepRequest) -> StepResult:
        applied, sps_status = await asyncio.to_thread(self.apply_state, req.state)
        if not applied:
            return StepResult(outcome="skipped", detail="a newer snapshot is already on the worklist")
        return StepResult(outcome="delivered", detail=f"worklist SPS {sps_status}" if sps_status else "off the worklist")


async def rebuild_worklist(client: Client, sync: WorklistSync, service: OrderService | None = None,
                           advance: Callable[[int], None] = lambda n: None) -> dict[str, int]:
    """Re-apply every open order's state; hide rows whose order is no longer open. `advance(1)` per order looked at."""
    service = service or OrderService(client)
    open_statuses = ", ".join(d.quote_visibility(s) for s in ("SCHEDULED", "IN_PROGRESS", "NEEDS_ATTENTION", "ORDERED"))
    query = (f"{d.order_workflow_types_clause()} AND ExecutionStatus = 'Running' "
             f"AND TaskQueue = {d.quote_visibility(service.task_queue)} "
             f"AND {d.SA_ORDER_STATUS.name} IN ({open_statuses})")
    seen: set[str] = set()
    applied = hidden = failed = 0
    async for wf in client.list_workflows(query):
        accession = d.accession_from_workflow_id(wf.id)
        if not accession:
            continue
        advance(1)
        try:
            state = await service.get_state(accession)
        except OrderNotFound:
            continue
        except OrderError as err:
            log.warning("order state unavailable; row left as is", extra={"accession": accession, "error": str(err)[:200]})
            failed += 1
            continue
        seen.add(accession)
        ok, status = await asyncio.to_thread(sync.apply_state, state)
        # Visibility may still list an order that has just closed: its own state hides the row.
        if ok and not status:
            hidden += 1
        else:
            applied += int(ok)
    # Visible rows visibility did not list: ask each order itself (visibility lags).
    for accession in await asyncio.to_thread(sync.store.visible_accessions):
        if accession in seen:
            continue
        advance(1)
        try:
            # A closed workflow (completed, or terminated without telling anyone) has no
            # business on the worklist, whatever its last state says.
            if not await service.is_running(accession):
                await asyncio.to_thread(sync.store.hide, accession)
                hidden += 1
                continue
            state = await service.get_state(accession)
        except OrderNotFound:
            await asyncio.to_thread(sync.store.hide, accession)
            hidden += 1
            continue
        except OrderError as err:
            log.warning("order state unavailable; row left as is", extra={"accession": accession, "error": str(err)[:200]})
            failed += 1
            continue
        ok, status = await asyncio.to_thread(sync.apply_state, state)
        hidden += int(not status)
    log.info("worklist rebuilt", extra={"applied": applied, "hidden": hidden, "failed": failed})
    return {"applied": applied, "hidden": hidden, "failed": failed}
