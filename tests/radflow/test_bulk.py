"""The bulk filter on its own: the visibility query it asks, and the exact check of each candidate's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from radflow.domain.definitions import OrderStatus
from radflow.domain.order import Attention, LaneState, OrderState
from radflow.service.bulk import BulkFilter, waiting_lanes
from radflow.service.order_search import InvalidFilter
from tests.factories import make_order

T0 = datetime(2030, 3, 5, 9, 0, tzinfo=UTC)


def state(status: OrderStatus = OrderStatus.REPORTED, waiting: str = "", updated: datetime = T0) -> OrderState:
    lanes = {"hl7": LaneState(), "fhir": LaneState()}
    if waiting:
        lanes[waiting] = LaneState(attention=Attention(reason="EHR down", step=f"{waiting}:report", since=T0))
    return OrderState(order=make_order(station="CT01"), status=status, created_at=T0, updated_at=updated, lanes=lanes)


def test_query_scopes_to_running_orders_of_the_task_queue_and_keeps_old_orders_as_candidates() -> None:
    query = BulkFilter(status=OrderStatus.REPORTED, lane="hl7", station="CT01", procedure="CTHEAD").to_query("q1")
    assert "TaskQueue = 'q1'" in query and "ExecutionStatus = 'Running'" in query
    assert "OrderStatus = 'REPORTED'" in query and "ScheduledStationAETitle = 'CT01'" in query
    # Orders that never upserted the newer attributes (started before them) stay candidates.
    assert "(AttentionLane = 'hl7' OR (NeedsAttention = true AND AttentionLane IS NULL))" in query
    assert "(ProcedureCode = 'CTHEAD' OR ProcedureCode IS NULL)" in query
    assert "StartTime" not in BulkFilter(station="CT01", created_from=T0).to_query("q1")


def test_quotes_in_values_cannot_break_out_of_the_query() -> None:
    query = BulkFilter(station="CT01' OR 'a' = 'a").to_query("q1")
    assert "ScheduledStationAETitle = 'CT01\\' OR \\'a\\' = \\'a'" in query


@pytest.mark.parametrize("flt", [BulkFilter(), BulkFilter(created_from=T0, created_to=T0 - timedelta(1))])
def test_refused_filters(flt: BulkFilter) -> None:
    with pytest.raises(InvalidFilter):
        flt.to_query("q1")


def test_exact_state_decides() -> None:
    waiting = state(waiting="hl7")
    assert BulkFilter(lane="hl7", station="CT01").mismatch(waiting) == ""
    assert BulkFilter(lane="fhir").mismatch(waiting) == "lane fhir is not waiting for an operator"
    assert BulkFilter(status=OrderStatus.SCHEDULED).mismatch(waiting) == "status is REPORTED"
    assert BulkFilter(station="MR01").mismatch(waiting) == "station is CT01"
    assert BulkFilter(procedure="MRBRAIN").mismatch(waiting) == "procedure is CTHEAD"
    assert BulkFilter(needs_attention=False).mismatch(waiting) == "needs attention"
    assert BulkFilter(needs_attention=True).mismatch(state()) == "does not need attention"
    assert BulkFilter(updated_from=T0 + timedelta(hours=1)).mismatch(waiting).startswith("updated at")
    assert BulkFilter(created_to=T0 - timedelta(hours=1)).mismatch(waiting).startswith("created at")
    assert BulkFilter(created_from=T0, created_to=T0, updated_to=T0).mismatch(waiting) == ""


def test_an_order_from_before_lanes_waits_on_its_step() -> None:
    old = state()
    old.attention = Attention(reason="EHR down", step="hl7:report", since=T0)
    assert waiting_lanes(old) == {"hl7"}
    assert BulkFilter(lane="hl7").mismatch(old) == ""
