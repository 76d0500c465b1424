"""ImagingOrder v1, frozen: kept registered, unchanged, so orders started before the lanes
rewrite (workflows/order.py, ImagingOrderV2) finish as they began (docs/workflow.md "Upgrades").
Do not change its commands; fix forward in v2 and keep this file for in-flight v1 histories.

One imaging order = one workflow: ordered -> scheduled -> acquired -> reported -> delivered.

Deterministic code only: the state machine lives in `domain.transitions` (pure), every
side effect is an activity started from the main loop, never from a handler, so a stuck
step (NEEDS_ATTENTION) never blocks inbound events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from radflow.domain import definitions as d
    from radflow.domain.definitions import EventSource, OrderStatus, OverdueFlag, ReportStatus
    from radflow.domain.order import (
        Attention,
        EventKind,
        EventResult,
        OperatorAction,
        OperatorResult,
        OrderEvent,
        OrderPolicy,
        OrderState,
        StartOrder,
        StepRequest,
        StepResult,
        TimelineEntry,
    )
    from radflow.domain.studies import received_instances
    from radflow.domain.transitions import apply_event, effective_status, ready_for_acquisition, set_status

SEEN_IDS_KEPT = 200
PATCH_LATE_INSTANCES = "archive-late-instances"  # histories before it never re-ran acquisition steps
HISTORY_SOFT_LIMIT = 8_000


@dataclass(frozen=True)
class _Step:
    consumer: str
    activity: str
    milestone: str  # "report" for report deliveries; the event kind for sync steps


class _Operator:
    """Pending operator decision for the step that is waiting in NEEDS_ATTENTION."""

    def __init__(self) -> None:
        self.action: OperatorAction | None = None


@workflow.defn(name=d.ORDER_WORKFLOW_V1)
class ImagingOrderWorkflowV1:
    @workflow.init
    def __init__(self, start: StartOrder) -> None:
        self.policy: OrderPolicy = start.policy
        self._steps: list[_Step] = []
        self._operator = _Operator()
        self._done = False
        self._sa_last: dict[str, object] = {}
        self._synced_key: tuple = ()
        if start.carried is not None:
            self.state = start.carried
            return
        now = workflow.now()
        status = OrderStatus.SCHEDULED if start.order.schedule.is_scheduled() else OrderStatus.ORDERED
        self.state = OrderState(order=start.order, status=status, created_at=now, updated_at=now)
        if start.control_id:
            self.state.seen_control_ids.append(start.control_id)
        code = start.order.procedure.code or "no procedure code"
        repaired = f" (repaired: {'; '.join(start.repairs)})" if start.repairs else ""
        self._record(start.source, EventKind.NEW_ORDER.value, f"new order ({code}){repaired}", start.control_id)
        self._enqueue_sync(EventKind.NEW_ORDER.value)

    # ------------------------------------------------------------------ run loop
    @workflow.run
    async def run(self, start: StartOrder) -> str:
        self._upsert_search_attributes()
        while not self._done:
            if self._steps:
                await self._run_step(self._steps.pop(0))
                self._after_step()
                continue
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    StartOrder(order=self.state.order, source=EventSource.SYSTEM, policy=self.policy, carried=self.state)
                )
            due = self._next_deadline()
            timeout = max((due - workflow.now()).total_seconds(), 0.001) if due else None
            try:
                # Also wake when an event moved the next deadline, so the timer is re-armed.
                await workflow.wait_condition(
                    lambda: bool(self._steps) or self._done or self._next_deadline() != due, timeout=timeout
                )
            except asyncio.TimeoutError:
                self._on_deadline()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state.status.value

    # ------------------------------------------------------------------ inbound events
    @workflow.update(name=d.EVENT_UPDATE)
    def on_event(self, event: OrderEvent) -> EventResult:
        acc = self.state.order.accession
        # HL7 keys on sender + MSH-10 + content (message_key): a reused MSH-10 is not a resend.
        key = event.message_key or event.control_id
        if key and key in self.state.seen_control_ids:
            return EventResult(accession=acc, status=self.state.status, changed=False, duplicate=True, message="resent message ignored")
        now = workflow.now()
        outcome = apply_event(self.state, event, now)
        if not outcome.ok:
            self.state.exceptions += 1
            self._record(event.source, event.kind.value, outcome.error, event.control_id, exception=True)
            raise ApplicationError(outcome.error, type=d.ErrorType.INVALID_TRANSITION, non_retryable=True)
        if key:
            self.state.seen_control_ids = (self.state.seen_control_ids + [key])[-SEEN_IDS_KEPT:]
        if outcome.changed:
            self.state.updated_at = now
            repaired = f" (repaired: {'; '.join(event.repairs)})" if event.repairs else ""
            self._record(event.source, event.kind.value, outcome.summary + repaired, event.control_id)
            self._after_change(event.kind.value, outcome.deliver_report, outcome.check_acquisition)
        elif outcome.note:
            self._record(event.source, event.kind.value, outcome.summary, event.control_id)
        return EventResult(
            accession=acc, status=self.state.status, changed=outcome.changed, duplicate=outcome.duplicate, message=outcome.summary
        )

    @on_event.validator
    def _validate_event(self, event: OrderEvent) -> None:
        # Rejected here, the event never enters history; the gateway answers AR / 422.
        if event.kind in (EventKind.ORDER_CHANGED,) and event.order is None:
            raise ValueError("ORDER_CHANGED needs order details")
        if event.kind == EventKind.REPORT and event.report is None:
            raise ValueError("REPORT needs a report")

    # ------------------------------------------------------------------ operator
    @workflow.update(name=d.OPERATOR_UPDATE)
    def operator(self, action: OperatorAction) -> OperatorResult:
        self._take_operator_action(action)
        return OperatorResult(accession=self.state.order.accession, action=action.action, status=self.state.status)

    @operator.validator
    def _validate_operator(self, action: OperatorAction) -> None:
        if action.action not in ("retry", "skip"):
            raise ValueError(f"unknown operator action {action.action!r}: use 'retry' or 'skip'")
        if self.state.attention is None or self._operator.action is not None:
            raise ValueError("order is not waiting for an operator (not NEEDS_ATTENTION)")

    @workflow.signal(name=d.OPERATOR_SIGNAL)
    def operator_signal(self, action: OperatorAction) -> None:
        # Signals cannot be refused; an inapplicable one is recorded and ignored.
        try:
            self._validate_operator(action)
        except ValueError as err:
            self._record(EventSource.OPERATOR, "OPERATOR", f"ignored: {err}", exception=True)
            return
        self._take_operator_action(action)

    def _take_operator_action(self, action: OperatorAction) -> None:
        self._operator.action = action
        note = f" ({action.note})" if action.note else ""
        self._record(EventSource.OPERATOR, "OPERATOR", f"operator chose {action.action}{note}")

    # ------------------------------------------------------------------ queries
    @workflow.query(name=d.STATE_QUERY)
    def get_state(self) -> OrderState:
        return self.state

    @workflow.query(name=d.TIMELINE_QUERY)
    def get_timeline(self) -> list[TimelineEntry]:
        return self.state.timeline

    # ------------------------------------------------------------------ steps
    def _after_change(self, milestone: str, deliver_report: bool = False, check_acquisition: bool = False) -> None:
        if self.state.status != OrderStatus.DELIVERED and effective_status(self.state) in (
            OrderStatus.CANCELLED,
            OrderStatus.DISCONTINUED,
        ):
            self.state.closed_at = self.state.closed_at or workflow.now()
        if deliver_report:
            self.state.closed_at = None
            self._enqueue_each(self.policy.report_consumers, d.REPORT_DELIVERY_ACTIVITIES, d.MILESTONE_REPORT)
        if check_acquisition:
            self._check_acquisition()
        self._enqueue_sync(milestone)
        self._upsert_search_attributes()

    def _check_acquisition(self) -> None:
        ready, waiting = ready_for_acquisition(self.state)
        if not ready and self._late_instances() and workflow.patched(PATCH_LATE_INSTANCES):
            # Instances that arrived after ACQUIRED still go to the archive, which confirms the new count.
            self._enqueue_each(self.policy.acquisition_consumers, d.ACQUISITION_ACTIVITIES, d.MILESTONE_ACQUISITION)
            return
        if waiting:
            self._record(EventSource.SYSTEM, "WAITING", waiting)
        if not ready:
            return
        if any(c in d.ACQUISITION_ACTIVITIES for c in self.policy.acquisition_consumers):
            self._enqueue_each(self.policy.acquisition_consumers, d.ACQUISITION_ACTIVITIES, d.MILESTONE_ACQUISITION)
        else:
            self._apply_internal(EventKind.ACQUISITION_CONFIRMED, "acquisition complete (no archive configured)")

    def _late_instances(self) -> bool:
        """Acquired, and the study grew beyond what the acquisition steps last confirmed."""
        if effective_status(self.state) not in (OrderStatus.ACQUIRED, OrderStatus.REPORTED, OrderStatus.DELIVERED):
            return False
        if self.state.study.instance_count == 0:
            return False
        prefix = f"n{received_instances(self.state)}:"
        return any(not self.state.deliveries.get(f"acquisition:{c}", "").startswith(prefix)
                   for c in self.policy.acquisition_consumers if c in d.ACQUISITION_ACTIVITIES)

    def _apply_internal(self, kind: EventKind, reason: str) -> None:
        event = OrderEvent(kind=kind, source=EventSource.SYSTEM, reason=reason)
        outcome = apply_event(self.state, event, workflow.now())
        if outcome.ok and outcome.changed:
            self.state.updated_at = workflow.now()
            self._record(EventSource.SYSTEM, kind.value, outcome.summary)
            self._after_change(kind.value, outcome.deliver_report, outcome.check_acquisition)

    def _enqueue_sync(self, milestone: str) -> None:
        # Mirrors only hear about what they mirror: a new study count before acquisition
        # (every STUDY_STABLE) changes nothing they show, and would cost history per study.
        key = self._mirrored_key()
        if key == self._synced_key:
            return
        self._synced_key = key
        self._enqueue_each(self.policy.sync_consumers, d.SYNC_ACTIVITIES, milestone)

    def _mirrored_key(self) -> tuple:
        s = self.state
        confirmed = s.study.archive_confirmed
        return (
            effective_status(s).value,
            s.order.model_dump_json(),
            s.report.version if s.report else 0,
            confirmed,
            s.study.instance_count if confirmed else 0,
            # Further studies of the order (none in histories before them): mirrored once stable.
            *[(x.study_instance_uid, x.instance_count) for x in s.extra_studies if x.stable],
        )

    def _enqueue_each(self, consumers: list[str], registry: dict[str, str], milestone: str) -> None:
        for consumer in consumers:
            activity = registry.get(consumer)
            if activity:
                self._enqueue(_Step(consumer, activity, milestone))

    def _enqueue(self, step: _Step) -> None:
        # Steps send the state as it is when they run, so a queued twin adds nothing.
        if step not in self._steps:
            self._steps.append(step)

    async def _run_step(self, step: _Step) -> None:
        name = f"{step.consumer}:{step.milestone}"
        while True:
            snapshot = self.state.model_copy(update={"timeline": []})
            request = StepRequest(consumer=step.consumer, milestone=step.milestone, accession=self.state.order.accession, state=snapshot)
            try:
                result = await workflow.execute_activity(
                    step.activity,
                    request,
                    result_type=StepResult,
                    start_to_close_timeout=timedelta(seconds=self.policy.step_timeout_s),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=self.policy.step_initial_interval_s),
                        maximum_interval=timedelta(seconds=self.policy.step_max_interval_s),
                        maximum_attempts=self.policy.step_max_attempts,
                        non_retryable_error_types=[d.ErrorType.DELIVERY_REJECTED, d.ErrorType.INVALID_EVENT],
                    ),
                )
            except ActivityError as err:
                reason = _failure_reason(err)
                action = await self._wait_for_operator(name, reason)
                if action == "skip":
                    self._record(EventSource.OPERATOR, "STEP_SKIPPED", f"{name} skipped by operator")
                    self._mark_delivery(step, "skipped")
                    return
                continue
            self._mark_delivery(step, result.outcome)
            detail = f": {result.detail}" if result.detail else ""
            self._record(EventSource.SYSTEM, "STEP", f"{name} {result.outcome.replace('_', ' ')}{detail}")
            return

    async def _wait_for_operator(self, step_name: str, reason: str) -> str:
        now = workflow.now()
        self.state.attention = Attention(reason=reason, step=step_name, since=now, attempts=self.policy.step_max_attempts)
        self.state.status_before_attention = self.state.status
        self.state.status = OrderStatus.NEEDS_ATTENTION
        self._record(EventSource.SYSTEM, "NEEDS_ATTENTION", f"{step_name} failed after retries: {reason}", exception=True)
        self._upsert_search_attributes()
        await workflow.wait_condition(lambda: self._operator.action is not None)
        action = self._operator.action
        assert action is not None
        self._operator.action = None
        self.state.status = self.state.status_before_attention or OrderStatus.ORDERED
        self.state.status_before_attention = None
        self.state.attention = None
        self._upsert_search_attributes()
        return action.action

    def _mark_delivery(self, step: _Step, outcome: str) -> None:
        if step.milestone == d.MILESTONE_REPORT and self.state.report is not None:
            self.state.deliveries[step.consumer] = f"v{self.state.report.version}:{outcome}"
        elif step.milestone == d.MILESTONE_ACQUISITION:
            self.state.deliveries[f"acquisition:{step.consumer}"] = f"n{received_instances(self.state)}:{outcome}"

    def _after_step(self) -> None:
        if self.state.status == OrderStatus.NEEDS_ATTENTION:
            return
        self._maybe_acquired()
        self._maybe_delivered()

    def _maybe_acquired(self) -> None:
        if any(s.milestone == d.MILESTONE_ACQUISITION for s in self._steps):
            return
        if effective_status(self.state) not in (OrderStatus.ORDERED, OrderStatus.SCHEDULED, OrderStatus.IN_PROGRESS):
            return
        consumers = [c for c in self.policy.acquisition_consumers if c in d.ACQUISITION_ACTIVITIES]
        if not consumers or not ready_for_acquisition(self.state)[0]:
            return
        prefix = f"n{received_instances(self.state)}:"
        results = {c: self.state.deliveries.get(f"acquisition:{c}", "") for c in consumers}
        if all(r.startswith(prefix) for r in results.values()):
            outcomes = ", ".join(f"{c}={r.split(':', 1)[1]}" for c, r in results.items())
            self._apply_internal(EventKind.ACQUISITION_CONFIRMED, f"acquisition complete ({outcomes})")

    def _maybe_delivered(self) -> None:
        report = self.state.report
        if report is None or report.status == ReportStatus.PRELIMINARY:
            return
        if effective_status(self.state) != OrderStatus.REPORTED:
            return
        prefix = f"v{report.version}:"
        consumers = [c for c in self.policy.report_consumers if c in d.REPORT_DELIVERY_ACTIVITIES]
        if all(self.state.deliveries.get(c, "").startswith(prefix) for c in consumers):
            set_status(self.state, OrderStatus.DELIVERED)
            self.state.closed_at = workflow.now()
            outcomes = ", ".join(f"{c}={self.state.deliveries[c].split(':', 1)[1]}" for c in consumers) or "no consumers"
            self._record(EventSource.SYSTEM, "DELIVERED", f"{report.status.value} report delivered ({outcomes})")
            self._enqueue_sync("DELIVERED")
            self._upsert_search_attributes()

    # ------------------------------------------------------------------ deadlines
    def _deadlines(self) -> list[tuple[datetime, str]]:
        s = self.state
        status = effective_status(s)
        out: list[tuple[datetime, str]] = []
        start = s.order.schedule.start
        if status == OrderStatus.SCHEDULED and start and OverdueFlag.NO_IMAGES not in s.overdue:
            out.append((_aware(start) + timedelta(seconds=self.policy.no_images_after_s), OverdueFlag.NO_IMAGES.value))
        final = s.report is not None and s.report.status != ReportStatus.PRELIMINARY
        if s.acquired_at and not final and OverdueFlag.NO_FINAL_REPORT not in s.overdue and status in (
            OrderStatus.ACQUIRED,
            OrderStatus.REPORTED,
        ):
            out.append((s.acquired_at + timedelta(seconds=self.policy.no_report_after_s), OverdueFlag.NO_FINAL_REPORT.value))
        if s.closed_at and s.status in (OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.DISCONTINUED):
            out.append((s.closed_at + timedelta(seconds=self.policy.retention_after_close_s), "CLOSE"))
        return out

    def _next_deadline(self) -> datetime | None:
        deadlines = self._deadlines()
        return min(at for at, _ in deadlines) if deadlines else None

    def _on_deadline(self) -> None:
        now = workflow.now()
        for at, what in self._deadlines():
            if at > now:
                continue
            if what == "CLOSE":
                self._done = True
                continue
            self.state.overdue.append(OverdueFlag(what))
            label = "no images" if what == OverdueFlag.NO_IMAGES else "no final report"
            self._record(EventSource.TIMER, "OVERDUE", f"overdue: {label} by {at.isoformat()}", exception=True)
        self._upsert_search_attributes()

    # ------------------------------------------------------------------ helpers
    def _record(self, source: EventSource, kind: str, summary: str, control_id: str = "", exception: bool = False) -> None:
        self.state.timeline.append(
            TimelineEntry(
                at=workflow.now(),
                source=source,
                kind=kind,
                summary=summary,
                control_id=control_id,
                status=self.state.status,
                exception=exception,
            )
        )
        workflow.logger.info("order %s: %s %s", self.state.order.accession, kind, "exception" if exception else "")

    def _upsert_search_attributes(self) -> None:
        o = self.state.order
        wanted: dict[str, object] = {
            d.SA_ACCESSION.name: o.accession,
            d.SA_PATIENT_ID.name: o.patient.mrn_token or o.patient.mrn,
            d.SA_ORDER_STATUS.name: self.state.status.value,
            d.SA_MODALITY.name: o.schedule.modality,
            d.SA_STATION.name: o.schedule.station_ae,
            d.SA_STUDY_UID.name: o.study_instance_uid,
            d.SA_PLACER.name: o.placer_number,
            d.SA_SCHEDULED_START.name: _aware(o.schedule.start) if o.schedule.start else None,
            d.SA_NEEDS_ATTENTION.name: self.state.attention is not None,
            d.SA_OVERDUE.name: [f.value for f in self.state.overdue],
        }
        keys = {k.name: k for k in d.SEARCH_ATTRIBUTES}
        updates: list[SearchAttributeUpdate] = []
        for name, value in wanted.items():
            if self._sa_last.get(name, _MISSING) == value:
                continue
            key = keys[name]
            empty = value is None or value == "" or value == []
            updates.append(key.value_unset() if empty else key.value_set(value))  # type: ignore[arg-type]
        if updates:
            workflow.upsert_search_attributes(updates)
            self._sa_last = wanted

    def _should_continue_as_new(self) -> bool:
        if self._steps or self.state.attention is not None:
            return False
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_SOFT_LIMIT


_MISSING = object()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _failure_reason(err: ActivityError) -> str:
    cause = err.cause
    while cause is not None and getattr(cause, "cause", None) is not None and not isinstance(cause, ApplicationError):
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause) if cause is not None else str(err)

