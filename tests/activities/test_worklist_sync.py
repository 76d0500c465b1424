"""sync_worklist activity in the activity test environment (no Temporal server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.worklist_sync import WorklistSync
from domain.definitions import OrderStatus
from domain.order import OrderState, StepRequest
from gateways.dicom.worklist_store import WorklistStore
from tests.factories import make_order

T0 = datetime(2030, 1, 1, 8, tzinfo=UTC)


def request(acc: str, status: OrderStatus, updated: datetime) -> StepRequest:
    state = OrderState(order=make_order(acc), status=status, created_at=T0, updated_at=updated)
    return StepRequest(consumer="worklist", milestone="NEW_ORDER", accession=acc, state=state)


async def test_sync_shows_then_hides_and_ignores_stale(tmp_path: Path) -> None:
    sync = WorklistSync(WorklistStore(tmp_path / "wl.db"))
    env = ActivityEnvironment()
    res = await env.run(sync.sync_worklist, request("S1", OrderStatus.SCHEDULED, T0))
    assert res.outcome == "delivered" and "SCHEDULED" in res.detail
    assert sync.store.get("S1").visible
    res = await env.run(sync.sync_worklist, request("S1", OrderStatus.CANCELLED, T0 + timedelta(seconds=1)))
    assert res.outcome == "delivered" and res.detail == "off the worklist"
    res = await env.run(sync.sync_worklist, request("S1", OrderStatus.SCHEDULED, T0))
    assert res.outcome == "skipped"
    assert not sync.store.get("S1").visible
