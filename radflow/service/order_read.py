"""Reading one order: from its read model (default) or exactly, by asking its workflow.

A query runs on the order's worker, so it waits behind whatever that worker has to do
first (a burst of new orders) and fails while it is down. The read model is the memo the
workflow keeps current (domain/order_view.py), read with DescribeWorkflowExecution, which
the Temporal frontend answers from the server's own record: milliseconds, worker or not.
It reflects the last workflow task the worker completed (or, before the first, what the
gateway started the order with), and says so: `pending` is true while the order has events
its worker has not processed yet, so a newer state may exist. The strong read is the query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from radflow.domain import definitions as d
from radflow.domain.order import OrderState
from radflow.domain.order_view import OrderView
from radflow.service.ordering import OrderService


class Consistency(StrEnum):
    EVENTUAL = "eventual"  # the read model: never waits for a worker
    STRONG = "strong"  # the workflow's own state by query: needs the worker, waits behind its backlog


@dataclass
class OrderRead:
    state: OrderState
    consistency: Consistency  # what was served (an order without a read model is read strongly)
    as_of: datetime  # when the order was in this state
    history_length: int | None  # history events when the view was written (0 = at start); None = by query
    pending: bool  # events the worker has not processed yet: the order may have moved on since `as_of`


async def read_order(service: OrderService, accession: str, consistency: Consistency = Consistency.EVENTUAL) -> OrderRead:
    if consistency == Consistency.EVENTUAL:
        handle = service.handle(accession)
        desc = await service._guard(handle.describe(rpc_timeout=service.rpc_timeout), accession)  # noqa: SLF001
        if d.MEMO_ORDER_VIEW in desc.raw_description.workflow_execution_info.memo.fields:
            view = await desc.memo_value(d.MEMO_ORDER_VIEW, type_hint=OrderView)
            return OrderRead(state=view.state, consistency=Consistency.EVENTUAL, as_of=view.as_of,
                             history_length=view.history_length,
                             pending=desc.raw_description.HasField("pending_workflow_task"))
        # Orders started before the read model existed (and ImagingOrder v1) have none: ask them.
    state = await service.get_state(accession)
    return OrderRead(state=state, consistency=Consistency.STRONG, as_of=datetime.now(UTC), history_length=None,
                     pending=False)
