"""sync_worklist activity in the activity test environment (no Temporal server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from radflow.activities.worklist_sync import WorklistSync
from radflow.domain.definitions import OrderStatus
from radflow.domain.order import OrderState, StepRequest
from radflow.infra.settings import Settings
from tests.factories import make_order

T0 = datetime(2030, 1, 1, 8, tzinfo=UTC)


def request(acc: str, status: OrderStatus, updated: datetime) -> StepRequest:
    state = OrderState(order=make_order(acc), status=status, created_at=T0, updated_at=updated)
    return StepRequest(consumer="worklist", milestone="NEW_ORDER", accession=acc, state=state)


@pytest.fixture(params=["sqlite", "postgresql"])
def read_model_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else ""


async def test_sync_shows_then_hides_and_ignores_stale(tmp_path: Path, read_model_url: str) -> None:
    sync = WorklistSync.from_settings(Settings(data_dir=tmp_path, read_model_url=read_model_url))  # as the worker builds it
    env = ActivityEnvironment()
    res = await env.run(sync.sync_worklist, request("S1", OrderStatus.SCHEDULED, T0))
    assert res.outcome == "delivered" and "SCHEDULED" in res.detail
    assert sync.store.get("S1").visible
    res = await env.run(sync.sync_worklist, request("S1", OrderStatus.CANCELLED, T0 + timedelta(seconds=1)))
    assert res.outcome == "delivered" and res.detail == "off the worklist"
    res = await env.run(sync.sync_worklist, request("S1", OrderStatus.SCHEDULED, T0))
    assert res.outcome == "skipped"
    assert not sync.store.get("S1").visible
