"""A lane whose activity runs locally (the worklist sync) fails into attention, on the real dev server.

Found while testing lanes: the failed local activity raised its own ApplicationError, the lane
task died silently, and the order stopped mirroring to the worklist (a cancel would stay on it).
"""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource
from radflow.domain.order import EventKind, EventResult, OperatorAction, OperatorResult, OrderPolicy, OrderState, StartOrder
from tests.factories import event, make_order
from tests.waiting import eventually
from tests.workflows.test_timers import BrokenWorklist, FlakyConsumer
from radflow.workflows.order import ImagingOrderWorkflow

pytestmark = pytest.mark.integration


async def test_failed_worklist_sync_waits_for_an_operator_and_resumes(client: Client, task_queue: str) -> None:
    worklist = BrokenWorklist()
    policy = OrderPolicy(sync_consumers=["worklist"], step_max_attempts=2, step_initial_interval_s=0.1,
                         step_max_interval_s=0.1)
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow],
                      activities=[worklist.sync, FlakyConsumer().deliver]):
        order = make_order()
        handle = await client.start_workflow(d.ORDER_WORKFLOW, StartOrder(order=order, source=EventSource.HL7, policy=policy),
                                             id=d.order_workflow_id(order.accession), task_queue=task_queue)
        state = await eventually(lambda: handle.query(d.STATE_QUERY, result_type=OrderState),
                                 lambda s: s.lanes["worklist"].attention is not None)
        attention = state.lanes["worklist"].attention
        assert attention is not None and "WorklistUnavailable" in attention.reason and worklist.attempts == 2
        assert state.needs_attention

        # The lane is alive: a cancel still applies, and a retry runs the sync again.
        result = await handle.execute_update(d.EVENT_UPDATE, event(EventKind.CANCEL, reason="test"), result_type=EventResult)
        assert result.changed
        await handle.execute_update(d.OPERATOR_UPDATE, OperatorAction(action="retry", lane="worklist"),
                                    result_type=OperatorResult)
        state = await eventually(lambda: handle.query(d.STATE_QUERY, result_type=OrderState),
                                 lambda s: s.lanes["worklist"].attention is not None and worklist.attempts == 4)
        assert worklist.attempts == 4 and state.lanes["worklist"].attention is not None
