"""The order state machine as a pure function: (state, event) -> outcome.

Whether an event may apply in a status, is a resend or only a note comes from the one
declarative table (domain/transition_table.py); the handlers here do the data side.

No I/O and no Temporal calls: the workflow applies the outcome (timeline, search
attributes, follow-up steps). Invalid transitions are not applied; they come back as
an exception outcome the workflow records and the gateway turns into AE / 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.merge import merge_partial, sub_paths
from radflow.domain.order import EventKind, OrderEvent, OrderState, Patient, PatientKey, Report
from radflow.domain.studies import merge_study, study_mismatch
from radflow.domain.transition_table import rule_for

S = OrderStatus

# Where each event may apply is domain/transition_table.py; a handler only asks whether an
# applied study/procedure event still moves the order out of the worklist statuses.
_OPEN_BEFORE_ACQUISITION = {S.ORDERED, S.SCHEDULED}

# HL7 ORC-5 order status -> target state for ORC-1 SC.
ORC5_STATUS = {
    "SC": S.SCHEDULED,
    "IP": S.IN_PROGRESS,
    "CM": S.ACQUIRED,
    "CA": S.CANCELLED,
    "DC": S.DISCONTINUED,
}


@dataclass
class Outcome:
    changed: bool
    summary: str
    error: str = ""  # "" = applied; otherwise the reason it was refused
    duplicate: bool = False
    deliver_report: bool = False  # a report version must go to the consumers
    check_acquisition: bool = False  # study/MPPS news: the workflow checks completeness
    note: bool = False  # nothing changed, but operators should see it on the timeline

    @property
    def ok(self) -> bool:
        return not self.error


def effective_status(state: OrderState) -> OrderStatus:
    """The clinical status, looking through a NEEDS_ATTENTION overlay."""
    if state.status == S.NEEDS_ATTENTION and state.status_before_attention:
        return state.status_before_attention
    return state.status


def set_status(state: OrderState, status: OrderStatus) -> None:
    if state.status == S.NEEDS_ATTENTION:
        state.status_before_attention = status
    else:
        state.status = status


def _refuse(event: OrderEvent, current: OrderStatus, why: str = "") -> Outcome:
    reason = why or f"{event.kind.value} is not allowed when the order is {current.value}"
    return Outcome(changed=False, summary=reason, error=reason)


def apply_event(state: OrderState, event: OrderEvent, now: datetime) -> Outcome:
    return _decide(event.kind, state, event, effective_status(state), now)


def _decide(kind: EventKind, state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    """The transition table decides refusals, resends and notes; the handler does the rest."""
    handler = _HANDLERS.get(kind)
    if handler is None:
        return _refuse(event, current, f"unsupported event {kind.value}")
    rule = rule_for(kind, current)
    if rule is None or rule.kind in ("move", "apply"):
        return handler(state, event, current, now)
    if rule.kind == "refuse":
        return _refuse(event, current, _refusal(kind, event, current))
    if rule.kind == "note":
        # MPPS often trails the images; a late step must not move the order back.
        return Outcome(changed=False, summary=f"late procedure step ignored (order already {current.value})", note=True)
    return Outcome(changed=False, summary=_UNCHANGED.get(kind, f"{kind.value} changes nothing"), duplicate=True)


_UNCHANGED = {
    EventKind.NEW_ORDER: "duplicate new order ignored",  # a second NW for an existing order is a resend
    EventKind.CANCEL: "already cancelled",
    EventKind.DISCONTINUE: "already discontinued",
    EventKind.PROCEDURE_DISCONTINUED: "already discontinued",
    EventKind.PROCEDURE_STARTED: "procedure already in progress",
}


def _refusal(kind: EventKind, event: OrderEvent, current: OrderStatus) -> str:
    """Why the table refuses: said the way an operator or a sender can act on it."""
    closed = current.value.lower()
    if kind == EventKind.CANCEL:
        return f"cannot cancel an order that is {current.value} (discontinue it instead)"
    if kind == EventKind.REPORT:
        return f"{event.report.status.value if event.report else 'a'} report for a {closed} order"
    if kind == EventKind.IMAGES_ARRIVING:
        return f"images for a {closed} order"
    if kind in (EventKind.STUDY_STABLE, EventKind.STUDY_LINKED):
        return f"study for a {closed} order"
    return ""


def _new_order(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    raise AssertionError("the transition table answers every NEW_ORDER (a resend)")


def _order_changed(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    if event.order is None:
        return _refuse(event, current, "order change without order details")
    new = merge_partial(state.order, event.order, event.cleared) if event.partial else event.order.model_copy()
    new.accession = state.order.accession  # the key never changes
    if not new.study_instance_uid:
        new.study_instance_uid = state.order.study_instance_uid
    state.order = new
    if current in _OPEN_BEFORE_ACQUISITION:
        set_status(state, S.SCHEDULED if new.schedule.is_scheduled() else S.ORDERED)
    return Outcome(changed=True, summary=f"order changed ({new.procedure.code or 'no code'})" + _deleted(event))


def _schedule(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    if event.schedule is None or not event.schedule.is_scheduled():
        return _refuse(event, current, "schedule needs a start time and a station AE title or modality")
    sched = event.schedule.model_copy()
    old = state.order.schedule
    sched.sps_id = sched.sps_id or old.sps_id
    sched.requested_procedure_id = sched.requested_procedure_id or old.requested_procedure_id
    state.order.schedule = sched
    state.overdue = [f for f in state.overdue if f.value != "NO_IMAGES"]
    set_status(state, S.SCHEDULED)
    when = sched.start.isoformat() if sched.start else "?"
    return Outcome(changed=True, summary=f"scheduled on {sched.station_ae or sched.modality} at {when}")


def _status_changed(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    target = ORC5_STATUS.get(event.order_status.upper())
    if target is None:
        return _refuse(event, current, f"unsupported order status {event.order_status!r} in ORC-5")
    if target == current:
        return Outcome(changed=False, summary=f"status already {current.value}", duplicate=True)
    if target == S.CANCELLED:
        return _decide(EventKind.CANCEL, state, event, current, now)
    if target == S.DISCONTINUED:
        return _decide(EventKind.DISCONTINUE, state, event, current, now)
    order = [S.ORDERED, S.SCHEDULED, S.IN_PROGRESS, S.ACQUIRED]
    if current not in order or order.index(target) < order.index(current):
        return _refuse(event, current, f"status change to {target.value} is not allowed from {current.value}")
    _enter(state, target, now)
    return Outcome(changed=True, summary=f"status changed to {target.value}")


def _cancel(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    _close(state, S.CANCELLED, now)
    return Outcome(changed=True, summary="cancelled" + (f": {event.reason}" if event.reason else ""))


def _discontinue(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    _close(state, S.DISCONTINUED, now)
    return Outcome(changed=True, summary="discontinued" + (f": {event.reason}" if event.reason else ""))


def _patient_updated(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    if event.patient is None:
        return _refuse(event, current, "patient update without patient")
    old = state.order.patient
    if event.patient.mrn != old.mrn:
        return _refuse(event, current, "patient update for another MRN")
    new = _incoming_patient(old, event)
    if new == old:
        return Outcome(changed=False, summary="demographics unchanged", duplicate=True)
    state.order.patient = new
    return Outcome(changed=True, summary="patient demographics updated" + _deleted(event))


def _patient_merged(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    if event.patient is None or event.merged_from is None:
        return _refuse(event, current, "merge needs the surviving patient and the merged MRN")
    old = state.order.patient
    if old.mrn == event.patient.mrn:
        return Outcome(changed=False, summary="already on the surviving MRN", duplicate=True)
    if old.mrn != event.merged_from.mrn:
        return _refuse(event, current, "merge does not concern this order's patient")
    state.previous_patients.append(PatientKey(mrn=old.mrn, issuer=old.issuer))
    # An A40 PID often carries only the surviving identifier: what it does not send stays.
    state.order.patient = _incoming_patient(old, event)
    return Outcome(changed=True, summary="patient merged into surviving MRN" + _deleted(event))


def _deleted(event: OrderEvent) -> str:
    """Timeline note of the values the sender deleted with "" (field names only, no values)."""
    return f"; deleted: {', '.join(event.cleared)}" if event.partial and event.cleared else ""


def _incoming_patient(old: Patient, event: OrderEvent) -> Patient:
    assert event.patient is not None
    if event.partial:
        new = merge_partial(old, event.patient, sub_paths(event.cleared, "patient."))
        new.mrn = event.patient.mrn
    else:
        new = event.patient.model_copy()
    new.issuer = new.issuer or old.issuer
    return new


def _report(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    report = event.report
    if report is None:
        return _refuse(event, current, "report event without report")
    if report.status != ReportStatus.PRELIMINARY and not report.has_content():
        # UID rows alone, or nothing: delivering it would tell the EHR the study was reported.
        return _refuse(event, current, f"{report.status.value} report has neither text nor a document")
    previous = state.report
    if previous is not None:
        if report.status == ReportStatus.PRELIMINARY and previous.status != ReportStatus.PRELIMINARY:
            return _refuse(event, current, f"preliminary report after a {previous.status.value} report")
        if report.status == ReportStatus.CORRECTED and previous.status == ReportStatus.PRELIMINARY:
            return _refuse(event, current, "corrected report before any final report")
        if report.status == previous.status and _same_content(report, previous):
            return Outcome(changed=False, summary=f"{report.status.value} report resent", duplicate=True)
    elif report.status == ReportStatus.CORRECTED:
        return _refuse(event, current, "corrected report before any final report")
    stored = report.model_copy()
    stored.version = (previous.version if previous else 0) + 1
    state.report = stored
    if report.status != ReportStatus.PRELIMINARY:
        state.overdue = [f for f in state.overdue if f.value != "NO_FINAL_REPORT"]
    set_status(state, S.REPORTED)
    return Outcome(changed=True, summary=f"{report.status.value} report received", deliver_report=True)


def _same_content(a: Report, b: Report) -> bool:
    return a.text == b.text and a.attachments == b.attachments and a.imaging_references == b.imaging_references


def _procedure_started(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    _enter(state, S.IN_PROGRESS, now)
    return Outcome(changed=True, summary="procedure started")


def _procedure_completed(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    study = event.study
    if study is not None:
        if study.study_instance_uid and not state.order.study_instance_uid:
            state.order.study_instance_uid = study.study_instance_uid
        state.study.expected_instance_count = study.expected_instance_count or study.instance_count
    _enter(state, S.IN_PROGRESS, now)
    expected = state.study.expected_instance_count
    summary = "procedure step completed" + (f" ({expected} instances referenced)" if expected else "")
    return Outcome(changed=True, summary=summary, check_acquisition=True)


def _procedure_discontinued(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    return _discontinue(state, event, current, now)


def _images_arriving(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    summary = "images arriving"
    if event.study is not None:
        if why := study_mismatch(state, event.study):
            return _refuse(event, current, why)
        if merge_study(state, event.study):
            summary = f"images arriving for a further study of the order ({event.study.study_instance_uid})"
    if current in _OPEN_BEFORE_ACQUISITION:
        _enter(state, S.IN_PROGRESS, now)
    return Outcome(changed=True, summary=summary)


def _study_stable(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime, linked: bool = False) -> Outcome:
    further = False
    if event.study is not None:
        # An operator's link is the decision on a mismatch: it is not refused again.
        if not linked and (why := study_mismatch(state, event.study)):
            return _refuse(event, current, why)
        further = merge_study(state, event.study)
    s, label = state.study, "study"
    if further and event.study is not None:
        uid = event.study.study_instance_uid
        s = next(x for x in state.extra_studies if x.study_instance_uid == uid)
        label = f"further study {uid}"
    s.stable = True
    summary = f"{label} stable: {s.series_count} series, {s.instance_count} instances"
    if current in _OPEN_BEFORE_ACQUISITION:
        _enter(state, S.IN_PROGRESS, now)
    return Outcome(changed=True, summary=summary, check_acquisition=True)


def _study_linked(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    outcome = _study_stable(state, event, current, now, linked=True)
    if outcome.ok:
        outcome.summary = "unmatched study linked; " + outcome.summary
    return outcome


def _acquisition_confirmed(state: OrderState, event: OrderEvent, current: OrderStatus, now: datetime) -> Outcome:
    state.study.archive_confirmed = True
    _enter(state, S.ACQUIRED, now)
    return Outcome(changed=True, summary=event.reason or "acquisition complete")


def ready_for_acquisition(state: OrderState) -> tuple[bool, str]:
    """Complete on radflow's side: stable study, and every MPPS-referenced instance received."""
    if effective_status(state) not in {S.ORDERED, S.SCHEDULED, S.IN_PROGRESS}:
        return False, ""
    s = state.study
    if not s.stable or s.instance_count == 0:
        return False, ""
    if s.expected_instance_count and s.instance_count < s.expected_instance_count:
        return False, f"waiting for images: {s.instance_count} of {s.expected_instance_count} referenced instances received"
    return True, ""


def _enter(state: OrderState, status: OrderStatus, now: datetime) -> None:
    set_status(state, status)
    if status in {S.IN_PROGRESS, S.ACQUIRED} and state.started_at is None:
        state.started_at = now
    if status == S.ACQUIRED and state.acquired_at is None:
        state.acquired_at = now
    if status in {S.IN_PROGRESS, S.ACQUIRED}:
        state.overdue = [f for f in state.overdue if f.value != "NO_IMAGES"]


def _close(state: OrderState, status: OrderStatus, now: datetime) -> None:
    set_status(state, status)
    state.closed_at = now


_HANDLERS = {
    EventKind.NEW_ORDER: _new_order,
    EventKind.ORDER_CHANGED: _order_changed,
    EventKind.SCHEDULE: _schedule,
    EventKind.STATUS_CHANGED: _status_changed,
    EventKind.CANCEL: _cancel,
    EventKind.DISCONTINUE: _discontinue,
    EventKind.PATIENT_UPDATED: _patient_updated,
    EventKind.PATIENT_MERGED: _patient_merged,
    EventKind.REPORT: _report,
    EventKind.PROCEDURE_STARTED: _procedure_started,
    EventKind.PROCEDURE_COMPLETED: _procedure_completed,
    EventKind.PROCEDURE_DISCONTINUED: _procedure_discontinued,
    EventKind.IMAGES_ARRIVING: _images_arriving,
    EventKind.STUDY_STABLE: _study_stable,
    EventKind.STUDY_LINKED: _study_linked,
    EventKind.ACQUISITION_CONFIRMED: _acquisition_confirmed,
}

