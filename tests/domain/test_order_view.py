"""The read model's view of an order: what it keeps, what it leaves to history, how it travels."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.contrib.pydantic import pydantic_data_converter

from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus
from radflow.domain.order import Attention, LaneState, OrderState, StudyInfo, TimelineEntry
from radflow.domain.order_view import OrderView, initial_view, view_state
from tests.factories import make_order, report

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def _state() -> OrderState:
    attention = Attention(reason="ConnectionRefused", step="hl7:report", since=NOW, attempts=5)
    return OrderState(
        order=make_order(), status=OrderStatus.REPORTED, created_at=NOW, updated_at=NOW,
        report=report(ReportStatus.FINAL, text="Findings " * 200), study=StudyInfo(study_instance_uid="1.2.3", instance_count=40),
        lanes={"worklist": LaneState(mirror_version=3, pending_kinds=["REPORT"], last="sync delivered"),
               "hl7": LaneState(report_version=1, attention=attention, last="report failed")},
        seen_control_ids=[f"MSG{i}" for i in range(200)], mirror_version=3, mirror_key="abc", timeline_total=9,
        timeline=[TimelineEntry(at=NOW, source=EventSource.HL7, kind="REPORT", summary="final report")] * 9,
    )


def test_the_view_keeps_what_readers_see_and_drops_bookkeeping() -> None:
    state = _state()
    view = view_state(state)
    assert view.status == state.status and view.order == state.order and view.study == state.study
    assert view.lanes["hl7"].attention == state.lanes["hl7"].attention and view.lanes["worklist"].last == "sync delivered"
    assert view.needs_attention
    assert view.report is not None and view.report.status == ReportStatus.FINAL and view.report.text == ""
    assert view.timeline == [] and view.seen_control_ids == [] and view.timeline_total == 0
    assert view.lanes["worklist"] == LaneState(last="sync delivered")  # which version a lane synced is not shown
    # A change of bookkeeping alone is no new view: the workflow writes no memo for it.
    busier = state.model_copy(update={"timeline_total": 10, "mirror_version": 4})
    assert view_state(busier) == view


async def test_the_view_travels_compactly_and_comes_back_whole() -> None:
    view = OrderView(state=view_state(_state()), as_of=NOW, history_length=42)
    [payload] = pydantic_data_converter.payload_converter.to_payloads([view])
    assert len(payload.data) < 1500  # defaults left out (the SDK warns above 2 KiB of memo)
    [back] = pydantic_data_converter.payload_converter.from_payloads([payload], [OrderView])
    assert back == view


def test_the_gateway_view_is_the_new_order() -> None:
    order = make_order()
    view = initial_view(order, OrderStatus.SCHEDULED, NOW, ["worklist", "hl7"])
    assert view.history_length == 0 and view.as_of == NOW
    assert view.state.status == OrderStatus.SCHEDULED and view.state.order == order
    assert set(view.state.lanes) == {"worklist", "hl7"} and not view.state.needs_attention
