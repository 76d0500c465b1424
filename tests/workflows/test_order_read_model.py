"""The order's memo is its read model: the workflow keeps it equal to its state, across runs.

Real dev server, real worker (the HL7 delivery is a fake that fails until told otherwise).
"""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus
from radflow.domain.order import EventKind, OperatorAction, OrderPolicy
from radflow.domain.order_view import view_state
from radflow.service.ordering import OrderService
from radflow.service.order_read import Consistency, read_order
from tests.factories import event, make_order, report
from tests.waiting import eventually
from tests.workflows.test_timers import FlakyConsumer
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow

pytestmark = pytest.mark.integration


async def _same(svc: OrderService, acc: str) -> None:
    read = await read_order(svc, acc)
    exact = await svc.get_state(acc)
    assert read.consistency == Consistency.EVENTUAL
    assert read.state == view_state(exact), (read.state, exact)
    assert read.state.timeline == [] and read.state.seen_control_ids == []  # history has them; reads need none


async def test_the_view_follows_every_change(client: Client, task_queue: str) -> None:
    consumer = FlakyConsumer()
    policy = OrderPolicy(step_max_attempts=1, step_initial_interval_s=0.1)
    svc = OrderService(client, task_queue=task_queue, policy=policy)
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, OrderIndexWorkflow],
                      activities=[consumer.deliver]):
        order = make_order()
        acc = order.accession
        await svc.start_order(order, EventSource.HL7, "NW1")
        first = await read_order(svc, acc)
        assert first.state.status == OrderStatus.SCHEDULED and first.state.order.patient.mrn == order.patient.mrn

        # Read-your-writes: the update's answer and the new view leave in the same workflow task.
        await svc.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
        read = await read_order(svc, acc)
        assert read.state.status == OrderStatus.REPORTED and read.history_length and read.history_length > 0
        assert read.state.report is not None and read.state.report.text == ""  # report text stays in history

        await eventually(lambda: read_order(svc, acc), lambda r: r.state.needs_attention)
        await _same(svc, acc)
        consumer.healthy = True
        await svc.operator_action(acc, OperatorAction(action="retry", lane="hl7"))
        assert not (await read_order(svc, acc)).state.needs_attention  # the decision is in the next read
        done = await eventually(lambda: read_order(svc, acc), lambda r: r.state.status == OrderStatus.DELIVERED)
        assert done.state.status == OrderStatus.DELIVERED and done.state.deliveries
        await _same(svc, acc)

        # One memo write per workflow task at most, and none for tasks that changed nothing shown.
        events = [e async for e in svc.handle(acc).fetch_history_events()]
        tasks = sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events)
        writes = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED]
        assert 0 < len(writes) <= tasks
        markers = [e.marker_recorded_event_attributes.marker_name for e in events
                   if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
        assert "core_patch" not in markers  # a baseline start: the memo path without a patch marker


async def test_the_view_survives_continue_as_new(client: Client, task_queue: str) -> None:
    consumer = FlakyConsumer()
    consumer.healthy = True
    policy = OrderPolicy(history_soft_limit=40, step_initial_interval_s=0.1)
    svc = OrderService(client, task_queue=task_queue, policy=policy)
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, OrderIndexWorkflow],
                      activities=[consumer.deliver]):
        order = make_order()
        acc = order.accession
        await svc.start_order(order, EventSource.HL7, "NW1")
        for i in range(12):
            await svc.send_event(acc, event(EventKind.PATIENT_UPDATED, control_id=f"A08-{i}",
                                            patient=order.patient.model_copy(update={"sex": "MFOU"[i % 4]})))
        state = await eventually(lambda: svc.get_state(acc), lambda s: s.runs > 1)
        assert state.runs > 1
        read = await read_order(svc, acc)
        assert read.state.runs == state.runs and read.state.order.patient.sex == "MFOU"[11 % 4]
        await _same(svc, acc)
        assert d.MEMO_ORDER_VIEW in (await svc.handle(acc).describe()).raw_description.workflow_execution_info.memo.fields
