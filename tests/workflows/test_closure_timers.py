"""Closure policies on the time-skipping server (issue 9 item 5): EXPIRED, UNREPORTED, COMPLETED.

Consumers are faked by activity name (they record the snapshots they were sent), so the
test sees what the worklist and FHIR mirrors were told when the order closed.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource, OrderStatus, OverdueFlag, ReportStatus
from radflow.domain.order import EventKind, EventResult, OrderPolicy, OrderState, StartOrder, StepRequest, StepResult
from tests.factories import event, make_order, report, stable_study
from radflow.workflows.order import ImagingOrderWorkflow

HOUR = 3600.0
DAY = 24 * HOUR


class Mirrors:
    def __init__(self) -> None:
        self.worklist: list[OrderStatus] = []
        self.fhir: list[OrderStatus] = []

    @activity.defn(name="sync_worklist")
    async def sync_worklist(self, req: StepRequest) -> StepResult:
        self.worklist.append(req.state.status)
        return StepResult(outcome="delivered")

    @activity.defn(name="sync_fhir")
    async def sync_fhir(self, req: StepRequest) -> StepResult:
        self.fhir.append(req.state.status)
        return StepResult(outcome="delivered")

    @activity.defn(name="deliver_report_fhir")
    async def deliver_report_fhir(self, req: StepRequest) -> StepResult:
        return StepResult(outcome="not_configured")


async def _start(env: WorkflowEnvironment, tq: str, policy: OrderPolicy) -> WorkflowHandle:
    now = await env.get_current_time()
    order = make_order(start=now + timedelta(hours=1))
    return await env.client.start_workflow(
        d.ORDER_WORKFLOW, StartOrder(order=order, source=EventSource.HL7, control_id="NW1", policy=policy),
        id=d.order_workflow_id(order.accession), task_queue=tq)


async def _state(handle: WorkflowHandle) -> OrderState:
    return await handle.query(d.STATE_QUERY, result_type=OrderState)


def _policy(**kw) -> OrderPolicy:
    return OrderPolicy(sync_consumers=["worklist", "fhir"], report_consumers=["fhir"],
                       retention_after_close_s=DAY, **kw)


async def test_scheduled_never_started_expires(time_env: WorkflowEnvironment) -> None:
    tq, mirrors = "closure-expire", Mirrors()
    policy = _policy(no_images_after_s=2 * HOUR, expire_after_s=3 * DAY)
    async with Worker(time_env.client, task_queue=tq, workflows=[ImagingOrderWorkflow],
                      activities=[mirrors.sync_worklist, mirrors.sync_fhir, mirrors.deliver_report_fhir]):
        handle = await _start(time_env, tq, policy)
        await time_env.sleep(timedelta(days=2))
        state = await _state(handle)
        assert state.status == OrderStatus.SCHEDULED and state.overdue == [OverdueFlag.NO_IMAGES]
        await time_env.sleep(timedelta(days=1, hours=2))  # start + 3 days passed
        state = await _state(handle)
        assert state.status == OrderStatus.EXPIRED and state.closed_at is not None
        assert state.timeline[-1].kind in ("EXPIRED", "STEP") and any(e.kind == "EXPIRED" for e in state.timeline)
        # Both mirrors were told (the worklist row hides, FHIR Task/ServiceRequest change).
        assert mirrors.worklist[-1] == OrderStatus.EXPIRED and mirrors.fhir[-1] == OrderStatus.EXPIRED
        final = OrderState.model_validate(await handle.result())  # retention (1 day) then the run ends
        assert final.status == OrderStatus.EXPIRED


async def test_acquired_never_reported_keeps_its_flag_then_closes_unreported(time_env: WorkflowEnvironment) -> None:
    tq, mirrors = "closure-unreported", Mirrors()
    policy = _policy(no_report_after_s=DAY, unreported_close_after_s=30 * DAY)
    async with Worker(time_env.client, task_queue=tq, workflows=[ImagingOrderWorkflow],
                      activities=[mirrors.sync_worklist, mirrors.sync_fhir, mirrors.deliver_report_fhir]):
        handle = await _start(time_env, tq, policy)
        await handle.execute_update(d.EVENT_UPDATE, event(EventKind.STUDY_STABLE, study=stable_study(),
                                                          source=EventSource.DICOM), result_type=EventResult)
        await handle.execute_update(d.EVENT_UPDATE, event(EventKind.REPORT, report=report(ReportStatus.PRELIMINARY)),
                                    result_type=EventResult)
        await time_env.sleep(timedelta(days=29))
        state = await _state(handle)
        assert state.status == OrderStatus.REPORTED and state.overdue == [OverdueFlag.NO_FINAL_REPORT]
        await time_env.sleep(timedelta(days=1, hours=1))
        state = await _state(handle)
        assert state.status == OrderStatus.UNREPORTED and state.overdue == [OverdueFlag.NO_FINAL_REPORT]
        assert mirrors.fhir[-1] == OrderStatus.UNREPORTED


async def test_final_report_nobody_acknowledged_is_completed_not_delivered(time_env: WorkflowEnvironment) -> None:
    tq, mirrors = "closure-completed", Mirrors()
    async with Worker(time_env.client, task_queue=tq, workflows=[ImagingOrderWorkflow],
                      activities=[mirrors.sync_worklist, mirrors.sync_fhir, mirrors.deliver_report_fhir]):
        handle = await _start(time_env, tq, _policy())
        await handle.execute_update(d.EVENT_UPDATE, event(EventKind.REPORT, report=report(ReportStatus.FINAL)),
                                    result_type=EventResult)
        await time_env.sleep(timedelta(minutes=1))
        state = await _state(handle)
        assert state.status == OrderStatus.COMPLETED and state.deliveries["fhir"] == "v1:not_configured"
        assert any(e.kind == "COMPLETED" and "no destination acknowledged" in e.summary for e in state.timeline)
