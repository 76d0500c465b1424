"""Deadlines and stuck-exam handling on the time-skipping test server."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource, OrderStatus, OverdueFlag, ReportStatus
from radflow.domain.order import (
    EventKind,
    EventResult,
    OperatorAction,
    OperatorResult,
    OrderPolicy,
    OrderState,
    StartOrder,
    StepRequest,
    StepResult,
)
from tests.factories import event, make_order, report, stable_study
from tests.waiting import eventually
from radflow.workflows.allocator import AccessionAllocatorWorkflow
from radflow.workflows.order import ImagingOrderWorkflow

HOUR = 3600.0


class FlakyConsumer:
    """A delivery activity that fails until told to recover (counts attempts)."""

    def __init__(self) -> None:
        self.attempts = 0
        self.healthy = False

    @activity.defn(name="deliver_report_hl7")
    async def deliver(self, req: StepRequest) -> StepResult:
        self.attempts += 1
        if not self.healthy:
            raise ApplicationError("EHR refused connection", type="ConnectionRefused")
        return StepResult(outcome="delivered", detail=f"attempt {self.attempts}")


async def _start(env: WorkflowEnvironment, tq: str, policy: OrderPolicy, scheduled: bool = True) -> WorkflowHandle:
    now = await env.get_current_time()
    order = make_order(start=now + timedelta(hours=1)) if scheduled else make_order(scheduled=False)
    return await env.client.start_workflow(
        d.ORDER_WORKFLOW,
        StartOrder(order=order, source=EventSource.HL7, control_id="NW1", policy=policy),
        id=d.order_workflow_id(order.accession),
        task_queue=tq,
    )


async def _state(handle: WorkflowHandle) -> OrderState:
    return await handle.query(d.STATE_QUERY, result_type=OrderState)


async def _send(handle: WorkflowHandle, kind: EventKind, **fields) -> EventResult:
    return await handle.execute_update(d.EVENT_UPDATE, event(kind, **fields), result_type=EventResult)


def _worker(env: WorkflowEnvironment, tq: str, *activities) -> Worker:
    return Worker(env.client, task_queue=tq, workflows=[ImagingOrderWorkflow, AccessionAllocatorWorkflow],
                  activities=list(activities))


async def test_no_images_deadline_flags_without_changing_state(time_env: WorkflowEnvironment) -> None:
    tq = "timers-no-images"
    policy = OrderPolicy(no_images_after_s=2 * HOUR)
    async with _worker(time_env, tq, FlakyConsumer().deliver):
        handle = await _start(time_env, tq, policy)
        # Scheduled start is now+1h; the flag is due at now+3h.
        await time_env.sleep(timedelta(hours=2, minutes=50))
        state = await _state(handle)
        assert state.overdue == [] and state.status == OrderStatus.SCHEDULED
        await time_env.sleep(timedelta(minutes=20))
        state = await _state(handle)
        assert state.overdue == [OverdueFlag.NO_IMAGES]
        assert state.status == OrderStatus.SCHEDULED
        entry = state.timeline[-1]
        assert entry.source == EventSource.TIMER and "no images" in entry.summary


async def test_no_final_report_deadline(time_env: WorkflowEnvironment) -> None:
    tq = "timers-no-report"
    policy = OrderPolicy(no_report_after_s=5 * HOUR, no_images_after_s=100 * HOUR)
    async with _worker(time_env, tq, FlakyConsumer().deliver):
        handle = await _start(time_env, tq, policy)
        await _send(handle, EventKind.STUDY_STABLE, study=stable_study(), source=EventSource.DICOM)
        assert (await _state(handle)).status == OrderStatus.ACQUIRED
        await time_env.sleep(timedelta(hours=4, minutes=55))
        assert (await _state(handle)).overdue == []
        await time_env.sleep(timedelta(minutes=10))
        state = await _state(handle)
        assert state.overdue == [OverdueFlag.NO_FINAL_REPORT] and state.status == OrderStatus.ACQUIRED
        # A final report clears the flag.
        await _send(handle, EventKind.REPORT, report=report(ReportStatus.FINAL))
        state = await _state(handle)
        assert OverdueFlag.NO_FINAL_REPORT not in state.overdue


async def test_needs_attention_then_retry_resumes(time_env: WorkflowEnvironment) -> None:
    tq = "timers-retry"
    consumer = FlakyConsumer()
    policy = OrderPolicy(step_max_attempts=3, step_initial_interval_s=10, step_max_interval_s=10)
    async with _worker(time_env, tq, consumer.deliver):
        handle = await _start(time_env, tq, policy)
        await _send(handle, EventKind.REPORT, report=report(ReportStatus.FINAL))
        await time_env.sleep(timedelta(minutes=5))
        state = await _state(handle)
        # The status stays clinical; the hl7 lane waits for an operator.
        assert state.status == OrderStatus.REPORTED and state.needs_attention
        assert state.lanes["hl7"].attention is not None and state.attention == state.lanes["hl7"].attention
        assert state.attention is not None and "EHR refused connection" in state.attention.reason
        assert consumer.attempts == 3  # bounded by the retry policy, then it waits
        await time_env.sleep(timedelta(hours=1))
        assert consumer.attempts == 3

        # Inbound events still apply underneath the attention overlay.
        consumer.healthy = True
        result = await handle.execute_update(d.OPERATOR_UPDATE, OperatorAction(action="retry", note="EHR back"),
                                             result_type=OperatorResult)
        assert result.action == "retry" and not result.needs_attention and result.lanes["hl7"] == "retrying (operator)"
        await time_env.sleep(timedelta(seconds=30))
        state = await _state(handle)
        assert state.status == OrderStatus.DELIVERED and state.attention is None
        assert state.deliveries["hl7"].endswith("delivered")
        assert consumer.attempts == 4


async def test_skip_moves_on(time_env: WorkflowEnvironment) -> None:
    tq = "timers-skip"
    consumer = FlakyConsumer()
    policy = OrderPolicy(step_max_attempts=2, step_initial_interval_s=5, step_max_interval_s=5)
    async with _worker(time_env, tq, consumer.deliver):
        handle = await _start(time_env, tq, policy)
        await _send(handle, EventKind.REPORT, report=report(ReportStatus.FINAL))
        await time_env.sleep(timedelta(minutes=1))
        assert (await _state(handle)).needs_attention
        result = await handle.execute_update(d.OPERATOR_UPDATE, OperatorAction(action="skip", lane="hl7", note="sent by fax"),
                                             result_type=OperatorResult)
        # The reply carries the status after the skip: no destination acknowledged the final report.
        assert result.status == OrderStatus.COMPLETED and not result.needs_attention
        state = await _state(handle)
        assert state.status == OrderStatus.COMPLETED and not state.needs_attention
        assert state.deliveries["hl7"].endswith("skipped")
        assert any(e.kind == "STEP_SKIPPED" for e in state.timeline)


async def test_operator_update_rejected_when_nothing_pending(time_env: WorkflowEnvironment) -> None:
    tq = "timers-validator"
    async with _worker(time_env, tq, FlakyConsumer().deliver):
        handle = await _start(time_env, tq, OrderPolicy())
        try:
            await handle.execute_update(d.OPERATOR_UPDATE, OperatorAction(action="retry"), result_type=OperatorResult)
        except Exception as err:  # WorkflowUpdateFailedError from the validator
            assert "not waiting for an operator" in str(err.__cause__ or err)
        else:
            raise AssertionError("retry on an order that needs no attention must be rejected")
        try:
            await handle.execute_update(d.OPERATOR_UPDATE, OperatorAction(action="reboot"), result_type=OperatorResult)
        except Exception as err:
            assert "unknown operator action" in str(err.__cause__ or err)
        else:
            raise AssertionError("unknown action must be rejected")
        # Rejected updates never entered history: no OPERATOR timeline entry.
        assert not any(e.kind == "OPERATOR" for e in (await _state(handle)).timeline)


async def test_closed_order_completes_after_retention(time_env: WorkflowEnvironment) -> None:
    tq = "timers-close"
    policy = OrderPolicy(retention_after_close_s=24 * HOUR)
    async with _worker(time_env, tq, FlakyConsumer().deliver):
        handle = await _start(time_env, tq, policy)
        await _send(handle, EventKind.CANCEL, reason="duplicate order")
        await time_env.sleep(timedelta(hours=25))
        final = OrderState.model_validate(await handle.result())
        assert final.status == OrderStatus.CANCELLED and final.timeline[-1].kind == "CANCEL"


class BrokenWorklist:
    """The worklist read model is unavailable: its lane fails through its retries and waits."""

    def __init__(self) -> None:
        self.attempts = 0

    @activity.defn(name="sync_worklist")
    async def sync(self, req: StepRequest) -> StepResult:
        self.attempts += 1
        raise ApplicationError("worklist store unavailable", type="WorklistUnavailable")


async def test_a_waiting_lane_delays_neither_deadlines_nor_continue_as_new(time_env: WorkflowEnvironment) -> None:
    tq = "timers-lane-waits"
    worklist = BrokenWorklist()
    # The worklist sync is a local activity: its short retry backoff runs in real time in the worker.
    policy = OrderPolicy(sync_consumers=["worklist"], step_max_attempts=2, step_initial_interval_s=0.1,
                         step_max_interval_s=0.1, no_images_after_s=HOUR, history_soft_limit=80)
    async with _worker(time_env, tq, worklist.sync, FlakyConsumer().deliver):
        handle = await _start(time_env, tq, policy)  # scheduled an hour from now
        state = await eventually(lambda: _state(handle), lambda s: s.lanes["worklist"].attention is not None)
        assert state.status == OrderStatus.SCHEDULED and state.lanes["worklist"].attention is not None
        assert worklist.attempts == 2

        # The no-images deadline (scheduled start + 1 h) fires while the worklist lane waits.
        await time_env.sleep(timedelta(hours=3))
        state = await _state(handle)
        assert OverdueFlag.NO_IMAGES in state.overdue and state.lanes["worklist"].attention is not None

        # Events push the history past its soft limit: the order continues as new with the lane still waiting.
        patient = state.order.patient
        for n in range(40):
            result = await _send(handle, EventKind.PATIENT_UPDATED,
                                 patient=patient.model_copy(update={"name": patient.name.model_copy(update={"given": f"G{n}"})}))
            assert result.changed
        state = await _state(handle)
        assert state.runs > 1, "the order did not continue as new while a lane waited for an operator"
        assert state.lanes["worklist"].attention is not None and OverdueFlag.NO_IMAGES in state.overdue
        assert state.order.patient.name.given == "G39" and worklist.attempts == 2
