"""ImagingOrder v2: one imaging order = one workflow, with one delivery lane per consumer.

The state machine is pure (`domain.transitions`); what each lane owes the order is pure
too (`domain.lanes`). Inbound events are updates that change the state and return at
once; each lane (worklist, fhir, hl7, archive) is its own coroutine that wakes when the
order moved past what it last sent, runs its activity with its own retries, and waits
for an operator on its own when those are spent. So a FHIR outage never holds back the
worklist (a cancelled exam leaves the worklist within the next activity), other lanes,
deadlines or continue-as-new (docs/workflow.md).

The status is always the clinical one; attention is a per-lane flag (`needs_attention`).
Orders started before this rewrite keep running `workflows/order_v1.py`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from radflow.domain import definitions as d
    from radflow.domain.definitions import EventSource, OrderStatus, OverdueFlag, ReportStatus
    from radflow.domain.lanes import Work, acquisition_settled, mark_done, mirror_key, pending_work, report_verdict
    from radflow.domain.order_view import OrderView, view_state
    from radflow.domain.order import (
        Attention,
        EventKind,
        EventResult,
        LaneState,
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
    from radflow.domain.studies import archive_queue, fuller_copy
    from radflow.domain.transitions import apply_event, ready_for_acquisition
    from radflow.domain.ui_metadata import activity_summary, check_operator_action, current_details, parse_operator_action, who

S = OrderStatus
SEEN_IDS_KEPT = 200
PENDING_KINDS_KEPT = 16
# Patch (docs/workflow.md "Upgrades"): worklist syncs as local activities, and a FHIR report
# delivery counting as the FHIR sync of the same snapshot. Histories before it replay without.
PATCH_FEWER_ACTIVITIES = "lanes-fewer-activities"
PATCH_LOCAL_FAILURE = "lane-local-activity-failure"  # a failed local activity puts its lane in attention
# archive_study runs on the task queue of the DICOM gateway whose spool holds the images (issue 12).
PATCH_ARCHIVE_QUEUE = "archive-on-gateway-queue"
PATCH_UI_SEARCH_ATTRIBUTES = "ui-search-attributes"  # AttentionLane and ProcedureCode upserted too
# The memo is the order's read model (domain/order_view.py), rewritten when what a reader sees
# changed: GET /orders/{accession} reads it without waiting for a worker (issue 12).
PATCH_READ_MODEL = "read-model-memo"
# A gateway's partial copy of a study another gateway holds whole (a modality failed over mid-study)
# leaves the order's study as it is (domain/studies.py fuller_copy; issue 12, failover test).
PATCH_FULLER_COPY = "study-keeps-fuller-copy"
# Timer summaries in the Temporal UI, by deadline (domain names in _deadlines()).
DEADLINE_SUMMARIES = MappingProxyType({
    OverdueFlag.NO_IMAGES.value: "no-images deadline",
    OverdueFlag.NO_FINAL_REPORT.value: "no-final-report deadline",
    S.EXPIRED.value: "expiry: scheduled, never started",
    S.UNREPORTED.value: "unreported close: no final report",
    "CLOSE": "retention after close, then the workflow completes",
})
# Orders started at baseline 1 (`StartOrder.baseline`: OrderService's starts and every continue-as-new
# since 2026-11-30) take the patched path of every patch above from their first task, without a
# marker. A marker costs an event and, through the SDK's TemporalChangeVersion search attribute, an
# upsert event and a visibility write: six of the ten events a new order's first task recorded. Runs
# without a baseline (started earlier) keep asking the history. docs/workflow.md "Upgrades": workers
# before starters.
BASELINE_PATCHES: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({PATCH_FEWER_ACTIVITIES, PATCH_LOCAL_FAILURE, PATCH_ARCHIVE_QUEUE, PATCH_UI_SEARCH_ATTRIBUTES,
               PATCH_READ_MODEL, PATCH_FULLER_COPY}),
)
FINAL_STATUSES = frozenset({S.DELIVERED, S.COMPLETED, S.CANCELLED, S.DISCONTINUED, S.EXPIRED, S.UNREPORTED})


@workflow.defn(name=d.ORDER_WORKFLOW)
class ImagingOrderWorkflow:
    @workflow.init
    def __init__(self, start: StartOrder) -> None:
        self.policy: OrderPolicy = start.policy
        self._baseline_level = min(start.baseline, len(BASELINE_PATCHES) - 1)
        self._baseline = BASELINE_PATCHES[self._baseline_level]
        self._lane_names = d.lane_names(self.policy.sync_consumers, self.policy.report_consumers,
                                        self.policy.acquisition_consumers)
        self._busy: dict[str, Work] = {}  # lane -> the work its activity is doing now
        self._view_dirty = True  # something the read model may show changed since it was last compared
        self._published: OrderState | None = None  # the state the memo holds (view_state)
        self._decisions: dict[str, OperatorAction] = {}  # lane -> operator decision not yet taken
        self._draining = False  # continue-as-new pending: lanes start no new activity
        self._stopping = False  # the run ends: lanes return once idle
        self._done = False
        self._sa_last: dict[str, object] = {}
        self._last_operator = ""  # current details: the last operator decision and who took it
        self._last_refusal = ""  # current details: the last operator-signal refused (signals cannot fail)
        if start.carried is not None:
            self.state = start.carried
            self._entries: list[TimelineEntry] = list(self.state.timeline)
        else:
            now = workflow.now()
            status = S.SCHEDULED if start.order.schedule.is_scheduled() else S.ORDERED
            self.state = OrderState(order=start.order, status=status, created_at=now, updated_at=now)
            self._entries = []
            if start.control_id:
                self.state.seen_control_ids.append(start.control_id)
            code = start.order.procedure.code or "no procedure code"
            repaired = f" (repaired: {'; '.join(start.repairs)})" if start.repairs else ""
            self._record(start.source, EventKind.NEW_ORDER.value, f"new order ({code}){repaired}", start.control_id)
        for name in self._lane_names:
            self.state.lanes.setdefault(name, LaneState())
        if start.carried is None:
            self._mirror(EventKind.NEW_ORDER.value)
            # The gateway started the order with this view. Taken here, before any handler runs: an
            # update delivered with the first task runs before `run` (its change must be published).
            self._published = view_state(self.state)

    # ------------------------------------------------------------------ run
    @workflow.run
    async def run(self, start: StartOrder) -> OrderState:
        self._upsert_search_attributes()
        publisher = asyncio.create_task(self._publish_views())
        lanes = [asyncio.create_task(self._lane(name)) for name in self._lane_names]
        try:
            await self._main_loop()
            await self._settle(wait_for_operators=True)
        except asyncio.CancelledError:
            # Temporal-level cancellation (UI "Request Cancellation", `temporal workflow cancel`):
            # a radflow cancel, then a normal finish so the lanes mirror it.
            self._on_temporal_cancel()
            await self._settle(wait_for_operators=False)
        self._stopping = True
        await asyncio.gather(*lanes)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await publisher
        self._publish()
        return self._final_state()

    async def _main_loop(self) -> None:
        while not self._done:
            if self._continue_as_new_due():
                await self._continue_as_new()
            due = self._next_deadline()
            timeout = max((due - workflow.now()).total_seconds(), 0.001) if due else None
            try:
                # Also wake when an event moved the next deadline, so the timer is re-armed.
                await workflow.wait_condition(
                    lambda: self._done or self._next_deadline() != due or self._continue_as_new_due(), timeout=timeout,
                    timeout_summary=self._deadline_summary(due),
                )
            except asyncio.TimeoutError:
                self._on_deadline()

    async def _settle(self, *, wait_for_operators: bool) -> None:
        """Let every lane send what it owes; on a regular close also wait for operators."""
        def settled() -> bool:
            for name in self._lane_names:
                lane = self.state.lanes[name]
                if name in self._busy or name in self._decisions:
                    return False
                if lane.attention is not None:
                    if wait_for_operators:
                        return False
                    continue
                if pending_work(self.state, name, self.policy):
                    return False
            return True

        await workflow.wait_condition(settled)

    async def _continue_as_new(self) -> None:
        # Lanes waiting for an operator are carried as they are; only running activities finish first.
        self._draining = True
        await workflow.wait_condition(lambda: not self._busy and not self._decisions and workflow.all_handlers_finished())
        carried = self.state.model_copy(update={"previous_run_id": workflow.info().run_id, "runs": self.state.runs + 1})
        # Without a memo here the next run would start with the memo the order was started with.
        memo = {d.MEMO_ORDER_VIEW: self._view(view_state(carried))} if self._patched(PATCH_READ_MODEL) else None
        # The next run keeps this run's baseline: an order started at 0 while older workers may still run
        # (RADFLOW_ORDER_BASELINE) records markers in every run, which any worker can replay.
        workflow.continue_as_new(StartOrder(order=self.state.order, source=EventSource.SYSTEM, policy=self.policy,
                                            carried=carried, baseline=self._baseline_level), memo=memo)

    def _continue_as_new_due(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > self.policy.history_soft_limit

    def _final_state(self) -> OrderState:
        return self.state.model_copy(update={"timeline": self.state.timeline[-self.policy.timeline_kept:]})

    # ------------------------------------------------------------------ inbound events
    @workflow.update(name=d.EVENT_UPDATE, description=(
        "Internal: radflow's gateways (HL7, DICOM, FHIR, API) deliver inbound events here. Not for operators: "
        f"use the `{d.OPERATOR_UPDATE}` update."))
    def on_event(self, event: OrderEvent) -> EventResult:
        acc = self.state.order.accession
        self._view_dirty = True  # whatever the event changes, the publisher compares
        # HL7 keys on sender + MSH-10 + content (message_key): a reused MSH-10 is not a resend.
        key = event.message_key or event.control_id
        if key and key in self.state.seen_control_ids:
            return EventResult(accession=acc, status=self.state.status, changed=False, duplicate=True, message="resent message ignored")
        if event.study is not None and (kept := fuller_copy(self.state, event.study)) is not None \
                and self._patched(PATCH_FULLER_COPY):
            event = event.model_copy(update={"study": kept})
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
            by = f" by {event.actor}" if event.actor else ""  # the authenticated API caller (timeline text only)
            self._record(event.source, event.kind.value, outcome.summary + repaired + by, event.control_id)
            self._after_change(event.kind.value, outcome.deliver_report, outcome.check_acquisition)
        elif outcome.note:
            self._record(event.source, event.kind.value, outcome.summary, event.control_id)
        return EventResult(
            accession=acc, status=self.state.status, changed=outcome.changed, duplicate=outcome.duplicate, message=outcome.summary
        )

    @on_event.validator
    def _validate_event(self, event: OrderEvent) -> None:
        # Rejected here, the event never enters history; the gateway answers AR / 422.
        if self._done:
            raise ApplicationError(f"order {self.state.order.accession} is closed", type=d.ErrorType.ORDER_CLOSED)
        if event.kind in (EventKind.ORDER_CHANGED,) and event.order is None:
            raise ValueError("ORDER_CHANGED needs order details")
        if event.kind == EventKind.REPORT and event.report is None:
            raise ValueError("REPORT needs a report")

    # ------------------------------------------------------------------ operator
    # The argument is read by hand (RawValue): a mistyped one (wrong field, wrong JSON shape) is
    # refused with one line saying what to type, instead of a converter error with a traceback.
    @workflow.update(name=d.OPERATOR_UPDATE, description=(
        "Operator decision for a lane waiting for an operator (Current Details says which): "
        '{"action": "retry", "lane": "hl7"} or {"action": "skip", "lane": "hl7", "note": "why"} '
        "(no lane = every waiting lane; skip needs a note). Refused with a one-line reason when it does not apply."))
    async def operator(self, raw: RawValue) -> OperatorResult:
        action = self._operator_action(raw)
        targets = self._operator_targets(action)
        self._take_operator_action(action, targets)
        # Answer with the order as it is once the lanes took the decision (a skip may deliver).
        await workflow.wait_condition(lambda: not any(t in self._decisions for t in targets))
        return self._operator_result(action)

    @operator.validator
    def _validate_operator(self, raw: RawValue) -> None:
        self._operator_action(raw)

    def _operator_action(self, raw: RawValue) -> OperatorAction:
        """The action, or ApplicationError with the one-line reason (no stack trace: radflow.service.temporal)."""
        action, error_type, refusal = self._read_operator_action(raw)
        if action is None or refusal:
            raise ApplicationError(refusal, type=error_type, non_retryable=True)
        return action

    def _read_operator_action(self, raw: RawValue) -> tuple[OperatorAction | None, str, str]:
        try:
            value = workflow.payload_converter().from_payload(raw.payload)
        except Exception:  # not JSON at all  # noqa: BLE001 - any decoding failure is the same refusal
            value = raw.payload.data[:40].decode("utf-8", "replace")
        action, refusal = parse_operator_action(value)
        if action is None:
            return None, d.ErrorType.OPERATOR_REFUSED, refusal
        error_type, refusal = check_operator_action(action, self._lane_names, self._operator_targets(action))
        return action, error_type, refusal

    @workflow.signal(name=d.OPERATOR_SIGNAL, description=(
        f"Same payload as the `{d.OPERATOR_UPDATE}` update. A signal cannot be refused: an action that does not apply "
        "is recorded as refused on the timeline and in Current Details (prefer the update: it answers)."))
    def operator_signal(self, raw: RawValue) -> None:
        action, _, refusal = self._read_operator_action(raw)
        if action is None or refusal:
            by = f" from {who(action)}" if action is not None else ""
            self._last_refusal = f"{refusal}{by} at {workflow.now():%Y-%m-%d %H:%M:%S}"
            self._record(EventSource.OPERATOR, "OPERATOR", f"{refusal}{by}", exception=True)
            return
        self._take_operator_action(action, self._operator_targets(action))

    def _operator_targets(self, action: OperatorAction) -> list[str]:
        names = [action.lane] if action.lane else self._lane_names
        return [n for n in names if n in self.state.lanes and self.state.lanes[n].attention is not None
                and n not in self._decisions]

    def _take_operator_action(self, action: OperatorAction, targets: list[str]) -> None:
        for name in targets:
            self._decisions[name] = action
        note = f" ({action.note})" if action.note else ""
        by = f" by {action.actor}" if action.actor else ""
        via = f" - via {action.via}" if action.via and action.via != "api" else ""
        unauthenticated = via if action.actor else f" - by {who(action)}"
        self._last_operator = (f"{action.action} of {', '.join(targets)} by {who(action)}{note} "
                               f"at {workflow.now():%Y-%m-%d %H:%M:%S}")
        self._record(EventSource.OPERATOR, "OPERATOR",
                     f"operator{by} chose {action.action}{note} for {', '.join(targets)}{unauthenticated}")

    def _operator_result(self, action: OperatorAction) -> OperatorResult:
        return OperatorResult(accession=self.state.order.accession, action=action.action, status=self.state.status,
                              needs_attention=self.state.needs_attention, lanes=self._lane_summary())

    def _lane_summary(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self._lane_names:
            lane = self.state.lanes.get(name)
            if lane is None:  # during __init__, before the lanes exist
                continue
            if lane.attention is not None:
                out[name] = f"waiting for operator: {lane.attention.reason}"
            elif name in self._busy:
                out[name] = f"running {self._busy[name].kind}"
            else:
                out[name] = lane.last or "idle"
        return out

    # ------------------------------------------------------------------ queries
    @workflow.query(name=d.STATE_QUERY, description="The order's full state (patient data included).")
    def get_state(self) -> OrderState:
        return self.state

    @workflow.query(name=d.TIMELINE_QUERY, description=(
        "This run's timeline entries: every inbound event, step, refusal and operator action, with who acted."))
    def get_timeline(self) -> list[TimelineEntry]:
        """This run's entries (those carried from earlier runs included); older ones: `previous_run_id`."""
        return self._entries

    # ------------------------------------------------------------------ lanes
    async def _lane(self, name: str) -> None:
        while True:
            await workflow.wait_condition(lambda: self._stopping or self._lane_ready(name))
            lane = self.state.lanes[name]
            if name in self._decisions:
                self._take_decision(name, self._decisions.pop(name))
                continue
            if self._stopping and (lane.attention is not None or not self._lane_ready(name)):
                return
            work = pending_work(self.state, name, self.policy)[0]
            carried = list(lane.pending_kinds) if work.kind == d.MILESTONE_SYNC else []
            snapshot_kinds, snapshot_mirror = list(lane.pending_kinds), self.state.mirror_version
            self._busy[name] = work
            self._show_details()
            try:
                result = await self._execute(name, work)
            except ActivityError as err:
                self._busy.pop(name, None)
                self._enter_attention(name, work, _failure_reason(err))
                continue
            except ApplicationError as err:
                # A local activity (the worklist sync) that ran out of attempts raises its own
                # ApplicationError, not an ActivityError: without this the lane task died and the
                # order stopped mirroring to the worklist. Histories from before keep their path.
                if not self._patched(PATCH_LOCAL_FAILURE):
                    raise
                self._busy.pop(name, None)
                self._enter_attention(name, work, _failure_reason(err))
                continue
            self._busy.pop(name, None)
            label = "+".join(carried) or work.kind  # a sync names the changes it carried
            if carried:
                lane.pending_kinds = lane.pending_kinds[len(carried):]  # kept: what arrived meanwhile
            mark_done(self.state, name, work, result.outcome)
            if (work.kind == d.MILESTONE_REPORT and name in d.REPORT_COVERS_SYNC and result.outcome == "delivered"
                    and not d.OWNER_MILESTONES.intersection(snapshot_kinds) and self._patched(PATCH_FEWER_ACTIVITIES)):
                # The report delivery wrote the order's resources from that snapshot: no separate sync.
                lane.pending_kinds = lane.pending_kinds[len(snapshot_kinds):]
                lane.mirror_version = max(lane.mirror_version, snapshot_mirror)
            detail = f": {result.detail}" if result.detail else ""
            self._record(EventSource.SYSTEM, "STEP", f"{name}:{label} {result.outcome.replace('_', ' ')}{detail}")
            self._after_lane()

    def _lane_ready(self, name: str) -> bool:
        if name in self._decisions:
            return True
        lane = self.state.lanes[name]
        if lane.attention is not None or self._draining:
            return False
        return bool(pending_work(self.state, name, self.policy))

    async def _execute(self, name: str, work: Work) -> StepResult:
        lane = self.state.lanes[name]
        snapshot = self.state.model_copy(update={"timeline": []})
        if work.kind == d.MILESTONE_SYNC:
            kinds = list(lane.pending_kinds)
            milestone = kinds[-1] if kinds else d.MILESTONE_SYNC
        else:
            kinds, milestone = [], work.kind
        request = StepRequest(consumer=name, milestone=milestone, milestones=kinds,
                              accession=self.state.order.accession, state=snapshot)
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=self.policy.step_initial_interval_s),
            maximum_interval=timedelta(seconds=self.policy.step_max_interval_s),
            maximum_attempts=self.policy.step_max_attempts,
            non_retryable_error_types=[d.ErrorType.DELIVERY_REJECTED, d.ErrorType.INVALID_EVENT],
        )
        if work.kind == d.MILESTONE_ACQUISITION:
            # Forwarding a study takes as long as it takes while it progresses: the heartbeat
            # timeout (not start-to-close) decides when an attempt is stuck.
            queue = archive_queue(self.state)
            if queue and self._patched(PATCH_ARCHIVE_QUEUE):
                # Only the gateway holding the spool can forward it; a gateway that never picks
                # the task up (down, or gone with its disk) puts the lane in attention.
                return await workflow.execute_activity(
                    work.activity, request, result_type=StepResult, task_queue=queue,
                    schedule_to_start_timeout=timedelta(seconds=self.policy.archive_pickup_timeout_s),
                    start_to_close_timeout=timedelta(seconds=self.policy.archive_timeout_s),
                    heartbeat_timeout=timedelta(seconds=self.policy.archive_heartbeat_s),
                    retry_policy=retry, summary=activity_summary(name, work.kind, self.state, kinds, work.mark) + f" on {queue}",
                )
            return await workflow.execute_activity(
                work.activity, request, result_type=StepResult,
                start_to_close_timeout=timedelta(seconds=self.policy.archive_timeout_s),
                heartbeat_timeout=timedelta(seconds=self.policy.archive_heartbeat_s),
                retry_policy=retry, summary=activity_summary(name, work.kind, self.state, kinds, work.mark),
            )
        if work.activity in d.LOCAL_ACTIVITIES and self._patched(PATCH_FEWER_ACTIVITIES):
            return await workflow.execute_local_activity(
                work.activity, request, result_type=StepResult,
                start_to_close_timeout=timedelta(seconds=self.policy.step_timeout_s),
                retry_policy=retry, summary=activity_summary(name, work.kind, self.state, kinds),
            )
        return await workflow.execute_activity(
            work.activity, request, result_type=StepResult,
            start_to_close_timeout=timedelta(seconds=self.policy.step_timeout_s),
            retry_policy=retry, summary=activity_summary(name, work.kind, self.state, kinds),
        )

    def _enter_attention(self, name: str, work: Work, reason: str) -> None:
        lane = self.state.lanes[name]
        lane.attention = Attention(reason=reason, step=f"{name}:{work.kind}", since=workflow.now(),
                                   attempts=self.policy.step_max_attempts)
        self._refresh_attention()
        self._record(EventSource.SYSTEM, "NEEDS_ATTENTION", f"{name}:{work.kind} failed after retries: {reason}", exception=True)
        self._upsert_search_attributes()

    def _take_decision(self, name: str, action: OperatorAction) -> None:
        lane = self.state.lanes[name]
        lane.attention = None
        lane.last = "retrying (operator)"
        if action.action == "skip":
            # Skip gives up on everything the lane owes now (one skip per outage, not one per step).
            skipped = pending_work(self.state, name, self.policy)
            for work in skipped:
                mark_done(self.state, name, work, "skipped")
            lane.pending_kinds = []
            what = ", ".join(w.kind for w in skipped) or "nothing pending"
            self._record(EventSource.OPERATOR, "STEP_SKIPPED", f"{name} skipped by operator: {what}")
            self._after_lane()
        self._refresh_attention()
        self._upsert_search_attributes()

    def _refresh_attention(self) -> None:
        waiting = [self.state.lanes[n].attention for n in self._lane_names if self.state.lanes[n].attention is not None]
        self.state.attention = waiting[0] if waiting else None

    def _after_lane(self) -> None:
        s = self.state
        if s.status in (S.ORDERED, S.SCHEDULED, S.IN_PROGRESS) and ready_for_acquisition(s)[0]:
            has_lane = any(c in d.ACQUISITION_ACTIVITIES for c in self.policy.acquisition_consumers)
            settled, outcomes = acquisition_settled(s, self.policy)
            if has_lane and settled:
                self._apply_internal(EventKind.ACQUISITION_CONFIRMED, f"acquisition complete ({outcomes})")
        verdict, summary = report_verdict(s, self.policy)
        if verdict is not None and s.report is not None:
            s.status = verdict
            s.closed_at = s.updated_at = workflow.now()
            what = "delivered" if verdict == S.DELIVERED else "completed, no destination acknowledged it"
            self._record(EventSource.SYSTEM, verdict.value, f"{s.report.status.value} report {what} ({summary})")
            self._mirror(verdict.value)
            self._upsert_search_attributes()

    # ------------------------------------------------------------------ state changes
    def _after_change(self, kind: str, deliver_report: bool = False, check_acquisition: bool = False) -> None:
        if self.state.status in (S.CANCELLED, S.DISCONTINUED):
            self.state.closed_at = self.state.closed_at or workflow.now()
        if deliver_report:
            self.state.closed_at = None  # a correction reopens a delivered order until it is delivered again
        if check_acquisition:
            ready, waiting = ready_for_acquisition(self.state)
            if waiting:
                self._record(EventSource.SYSTEM, "WAITING", waiting)
            if ready and not any(c in d.ACQUISITION_ACTIVITIES for c in self.policy.acquisition_consumers):
                self._apply_internal(EventKind.ACQUISITION_CONFIRMED, "acquisition complete (no archive configured)")
        self._mirror(kind)
        self._upsert_search_attributes()

    def _apply_internal(self, kind: EventKind, reason: str, source: EventSource = EventSource.SYSTEM) -> None:
        event = OrderEvent(kind=kind, source=source, reason=reason)
        outcome = apply_event(self.state, event, workflow.now())
        if outcome.ok and outcome.changed:
            self.state.updated_at = workflow.now()
            self._record(source, kind.value, outcome.summary)
            self._after_change(kind.value, outcome.deliver_report, outcome.check_acquisition)

    def _mirror(self, kind: str) -> None:
        """Bump the mirror version when what the sync lanes show changed; they coalesce the rest."""
        key = mirror_key(self.state)
        if key == self.state.mirror_key:
            return
        self.state.mirror_key = key
        self.state.mirror_version += 1
        for name in self._lane_names:
            lane = self.state.lanes[name]
            lane.pending_kinds = (lane.pending_kinds + [kind])[-PENDING_KINDS_KEPT:]

    def _on_temporal_cancel(self) -> None:
        s = self.state
        reason = "cancellation requested through Temporal (UI, CLI or batch)"
        if s.status in (S.ORDERED, S.SCHEDULED):
            self._apply_internal(EventKind.CANCEL, reason, EventSource.TEMPORAL)
        elif s.status == S.IN_PROGRESS:
            self._apply_internal(EventKind.DISCONTINUE, reason, EventSource.TEMPORAL)
        else:
            s.closed_at = s.closed_at or workflow.now()
            self._record(EventSource.TEMPORAL, "CLOSED", f"{reason}: order closed as {s.status.value}")
            self._upsert_search_attributes()

    # ------------------------------------------------------------------ deadlines
    def _deadlines(self) -> list[tuple[datetime, str]]:
        s, p = self.state, self.policy
        out: list[tuple[datetime, str]] = []
        start = s.order.schedule.start
        if s.status == S.SCHEDULED and start:
            if OverdueFlag.NO_IMAGES not in s.overdue:
                out.append((_aware(start) + timedelta(seconds=p.no_images_after_s), OverdueFlag.NO_IMAGES.value))
            out.append((_aware(start) + timedelta(seconds=p.expire_after_s), S.EXPIRED.value))
        final = s.report is not None and s.report.status != ReportStatus.PRELIMINARY
        if s.acquired_at and not final and s.status in (S.ACQUIRED, S.REPORTED):
            if OverdueFlag.NO_FINAL_REPORT not in s.overdue:
                out.append((s.acquired_at + timedelta(seconds=p.no_report_after_s), OverdueFlag.NO_FINAL_REPORT.value))
            out.append((s.acquired_at + timedelta(seconds=p.unreported_close_after_s), S.UNREPORTED.value))
        if s.closed_at and s.status in FINAL_STATUSES:
            out.append((s.closed_at + timedelta(seconds=p.retention_after_close_s), "CLOSE"))
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
            elif what in (S.EXPIRED.value, S.UNREPORTED.value):
                self._close_by_policy(S(what), at)
            else:
                self.state.overdue.append(OverdueFlag(what))
                label = "no images" if what == OverdueFlag.NO_IMAGES else "no final report"
                self._record(EventSource.TIMER, "OVERDUE", f"overdue: {label} by {at.isoformat()}", exception=True)
        self._upsert_search_attributes()

    def _close_by_policy(self, status: OrderStatus, at: datetime) -> None:
        s = self.state
        why = ("scheduled, never started" if status == S.EXPIRED else "acquired, no final report")
        s.status = status
        s.closed_at = s.updated_at = workflow.now()
        self._record(EventSource.TIMER, status.value, f"closed as {status.value}: {why} by {at.isoformat()}")
        self._mirror(status.value)

    # ------------------------------------------------------------------ helpers
    def _record(self, source: EventSource, kind: str, summary: str, control_id: str = "", exception: bool = False) -> None:
        s = self.state
        s.timeline_total += 1
        entry = TimelineEntry(at=workflow.now(), source=source, kind=kind, summary=summary, control_id=control_id,
                              status=s.status, exception=exception, seq=s.timeline_total)
        self._entries.append(entry)
        s.timeline = (s.timeline + [entry])[-self.policy.timeline_kept:]
        workflow.logger.info("order %s: %s %s", s.order.accession, kind, "exception" if exception else "")
        self._show_details()

    def _patched(self, patch: str) -> bool:
        if patch not in self._baseline:
            return workflow.patched(patch)
        if workflow.unsafe.is_replaying_history_events():
            # An older worker may have run this part of the order and recorded the marker (its code
            # calls `patched` here); matching it keeps the replay deterministic. With no marker the
            # call returns False and records nothing: this code ran the patched path without one.
            workflow.patched(patch)
        return True

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
            d.SA_NEEDS_ATTENTION.name: self.state.needs_attention,
            d.SA_OVERDUE.name: [f.value for f in self.state.overdue],
        }
        if self._patched(PATCH_UI_SEARCH_ATTRIBUTES):
            wanted[d.SA_ATTENTION_LANE.name] = [n for n in self._lane_names if self.state.lanes[n].attention is not None]
            wanted[d.SA_PROCEDURE_CODE.name] = o.procedure.code
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
        self._show_details()

    async def _publish_views(self) -> None:
        """Keep the memo equal to the state. This wakes once the changes applied together are all in
        (so they make one write, mostly one per workflow task), and within the activation that made
        them: an update's answer leaves with the memo it produced (a caller reads its own write)."""
        while not self._stopping:
            await workflow.wait_condition(lambda: self._view_dirty or self._stopping)
            self._publish()

    def _publish(self) -> None:
        self._view_dirty = False
        state = view_state(self.state)
        if state == self._published or not self._patched(PATCH_READ_MODEL):
            return
        self._published = state
        workflow.upsert_memo({d.MEMO_ORDER_VIEW: self._view(state)})

    def _view(self, state: OrderState) -> OrderView:
        return OrderView(state=state, as_of=workflow.now(), history_length=workflow.info().get_current_history_length())

    def _show_details(self) -> None:
        """Current details in the Temporal UI (not part of history: no replay concern)."""
        self._view_dirty = True  # every change shows here first
        workflow.set_current_details(current_details(self.state, self._lane_summary(), last_operator=self._last_operator,
                                                     last_refusal=self._last_refusal))

    def _deadline_summary(self, due: datetime | None) -> str | None:
        if due is None:
            return None
        whats = [DEADLINE_SUMMARIES.get(what, what) for at, what in self._deadlines() if at == due]
        return " + ".join(whats) or None


_MISSING = object()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _failure_reason(err: ActivityError | ApplicationError) -> str:
    if isinstance(err, ApplicationError):
        return f"{err.type}: {err.message}" if err.type else err.message
    cause = err.cause
    while cause is not None and getattr(cause, "cause", None) is not None and not isinstance(cause, ApplicationError):
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type}: {cause.message}" if cause.type else cause.message
    return str(cause) if cause is not None else str(err)
