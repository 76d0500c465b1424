"""The order's read model: the view of its state that reads are served from without a worker.

The workflow keeps it in its Temporal memo (`d.MEMO_ORDER_VIEW`), the gateway writes the first
one when it starts the order, and `GET /orders/{accession}` reads it with
DescribeWorkflowExecution, which the Temporal frontend answers even while the order's worker
is busy or down (docs/workflow.md "Read model"). It is the state minus what only the
workflow needs and what grows: every copy lands in history once per change.
"""

from __future__ import annotations

from datetime import datetime

from typing import Any

from pydantic import BaseModel, field_serializer

from radflow.domain.order import LaneState, OrderData, OrderState
from radflow.domain.definitions import OrderStatus


class OrderView(BaseModel):
    state: OrderState  # timeline, resend keys, report text and lane bookkeeping left out
    as_of: datetime  # when the order was in this state (workflow time, or the gateway's at start)
    history_length: int = 0  # events in the order's history when written; 0 = by the gateway at start

    @field_serializer("state")
    def _compact(self, state: OrderState) -> dict[str, Any]:
        # Defaults are restored when read: leaving them out keeps a typical view under the SDK's
        # 2 KiB memo warning and puts fewer bytes in history per change.
        return state.model_dump(mode="json", exclude_defaults=True)


def view_state(state: OrderState) -> OrderState:
    """The state as the read model holds it: what a reader is shown, without the workflow's bookkeeping
    (which lane synced which version, timeline counters), so a change of bookkeeping alone is no new view."""
    report = state.report.model_copy(update={"text": ""}) if state.report is not None else None
    lanes = {name: LaneState(last=lane.last, attention=lane.attention) for name, lane in state.lanes.items()}
    return state.model_copy(update={"timeline": [], "seen_control_ids": [], "report": report, "lanes": lanes,
                                    "mirror_key": "", "mirror_version": 0, "timeline_total": 0})


def initial_view(order: OrderData, status: OrderStatus, now: datetime, lane_names: list[str]) -> OrderView:
    """What the gateway writes when it starts the order: what the workflow's first state will show."""
    state = OrderState(order=order, status=status, created_at=now, updated_at=now,
                       lanes={name: LaneState() for name in lane_names})
    return OrderView(state=state, as_of=now)
