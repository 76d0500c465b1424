"""Closing orders (issue 9 items 3 and 4) on the real dev server, with the real worklist activity.

- Temporal-level cancellation (`temporal workflow cancel`, the UI button, batch cancel) is a
  radflow cancel: timeline entry with its source, CANCELLED, off the worklist, normal finish.
- A closed order answers with its final state; events to it are refused as "closed".
- Accessions are used once (REJECT_DUPLICATE): a resent NW of a closed order is a no-op,
  a different order reusing the accession is refused.
- After a terminate (destructive by design), `worklist-rebuild` hides the row.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from radflow.activities.worklist_sync import WorklistSync, rebuild_worklist
from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.order import EventKind, OrderPolicy, OrderState, StepRequest, StepResult
from radflow.gateways.dicom.worklist_store import WorklistStore
from radflow.devstack import find_binary
from radflow.service.ordering import OrderClosed, OrderService
from tests.factories import event, make_order
from tests.waiting import eventually
from radflow.workflows.order import ImagingOrderWorkflow

pytestmark = pytest.mark.integration


@activity.defn(name="deliver_report_hl7")
async def hl7_ok(req: StepRequest) -> StepResult:
    return StepResult(outcome="delivered")


@pytest.fixture
async def stack(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[tuple[OrderService, WorklistSync]]:
    sync = WorklistSync(WorklistStore(tmp_path / "worklist.db"))
    policy = OrderPolicy(sync_consumers=["worklist"], retention_after_close_s=0.5, step_initial_interval_s=0.1)
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow],
                      activities=[sync.sync_worklist, hl7_ok]):
        yield OrderService(client, task_queue=task_queue, policy=policy), sync


def typed_handle(service: OrderService, acc: str):
    """The workflow's return value is its final OrderState (bounded timeline)."""
    return service.client.get_workflow_handle(d.order_workflow_id(acc), result_type=OrderState)


async def visible(sync: WorklistSync, acc: str) -> bool:
    row = await asyncio.to_thread(sync.store.get, acc)
    return bool(row and row.visible)


async def test_temporal_cancel_is_a_radflow_cancel(stack, dev_server) -> None:
    service, sync = stack
    order = make_order(f"TC{uuid.uuid4().hex[:8].upper()}")
    await service.start_order(order, EventSource.HL7, "NW-1")
    assert await eventually(lambda: visible(sync, order.accession), bool)

    # What an operator runs (the UI's "Request Cancellation" sends the same request).
    done = await asyncio.to_thread(subprocess.run, [
        find_binary("temporal"), "workflow", "cancel", "--address", dev_server.address,
        "--workflow-id", d.order_workflow_id(order.accession)],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr

    handle = typed_handle(service, order.accession)
    final = await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED  # finished normally, not "cancelled"
    assert final.status == OrderStatus.CANCELLED and final.closed_at is not None
    cancel = next(e for e in final.timeline if e.kind == "CANCEL")
    assert cancel.source == EventSource.TEMPORAL and "Temporal" in cancel.summary
    assert not await visible(sync, order.accession)  # the worklist lane mirrored it before the run ended
    assert any(e.kind == "STEP" and e.summary.startswith("worklist:CANCEL") for e in final.timeline)

    # The API's reads still work on the closed order; writes are refused as closed (409 / AE), not 404.
    state = await service.get_state(order.accession)
    assert state.status == OrderStatus.CANCELLED
    with pytest.raises(OrderClosed, match="closed"):
        await service.send_event(order.accession, event(EventKind.CANCEL, reason="again"))


async def test_in_progress_order_is_discontinued_by_temporal_cancel(stack) -> None:
    service, sync = stack
    order = make_order(f"TD{uuid.uuid4().hex[:8].upper()}")
    await service.start_order(order, EventSource.HL7)
    await service.send_event(order.accession, event(EventKind.PROCEDURE_STARTED, source=EventSource.DICOM))
    handle = typed_handle(service, order.accession)
    await handle.cancel()
    final = await handle.result()
    assert final.status == OrderStatus.DISCONTINUED
    assert [e.source for e in final.timeline if e.kind == "DISCONTINUE"] == [EventSource.TEMPORAL]
    assert not await visible(sync, order.accession)


async def test_closed_accession_resend_is_a_no_op_and_reuse_is_refused(stack) -> None:
    service, sync = stack
    order = make_order(f"TR{uuid.uuid4().hex[:8].upper()}")
    await service.start_order(order, EventSource.HL7, "NW-1")
    await service.send_event(order.accession, event(EventKind.CANCEL, reason="duplicate"))
    await typed_handle(service, order.accession).result()  # closed after the 0.5 s retention

    # The sender resends the NW (same MSH-10, or rebuilt with a new one): acknowledged, nothing starts.
    for control_id in ("NW-1", "NW-1-resent"):
        again = await service.start_order(order, EventSource.HL7, control_id)
        assert (again.created, again.closed, again.status) == (False, True, OrderStatus.CANCELLED)
    assert (await service.handle(order.accession).describe()).status == WorkflowExecutionStatus.COMPLETED
    assert not await visible(sync, order.accession)

    # A different order (other placer number) reusing the accession is refused.
    other = make_order(order.accession)
    with pytest.raises(OrderClosed, match="new accession"):
        await service.start_order(other, EventSource.HL7, "NW-2")
    assert not await visible(sync, order.accession)


async def test_worklist_rebuild_hides_a_terminated_order(stack, client: Client) -> None:
    service, sync = stack
    order = make_order(f"TT{uuid.uuid4().hex[:8].upper()}")
    await service.start_order(order, EventSource.HL7)
    assert await eventually(lambda: visible(sync, order.accession), bool)
    await service.handle(order.accession).terminate(reason="operator terminate")  # no workflow code runs
    assert await visible(sync, order.accession)  # terminate is destructive: the read model is stale
    counts = await rebuild_worklist(client, sync, service)
    assert counts["hidden"] >= 1
    assert not await visible(sync, order.accession)
