"""Every status x event combination: domain.transitions does what the declarative table says,
and docs/transitions.md is the table as generated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus
from radflow.domain.order import EventKind, OrderEvent, OrderState, Patient, PatientKey
from radflow.domain.transition_table import DOC, NOTE, REFUSE, STATUSES, TABLE, Rule, markdown
from radflow.domain.transitions import apply_event
from tests.factories import make_order, report, stable_study

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
S = OrderStatus


def state_in(status: OrderStatus) -> OrderState:
    """A plausible order in that status (acquired ones have a study, reported ones a report)."""
    st = OrderState(order=make_order("ACC-TABLE"), status=status, created_at=T0, updated_at=T0)
    if status in (S.ACQUIRED, S.REPORTED, S.DELIVERED, S.COMPLETED, S.UNREPORTED):
        st.study = stable_study()
        st.study.archive_confirmed = True
        st.acquired_at = st.started_at = T0
    if status in (S.REPORTED, S.UNREPORTED):
        st.report = report(ReportStatus.PRELIMINARY, "prelim")
        st.report.version = 1
    if status in (S.DELIVERED, S.COMPLETED):
        st.report = report(ReportStatus.FINAL, "final")
        st.report.version = 2
    return st


def example(kind: EventKind, st: OrderState) -> OrderEvent:
    """The typical event of each kind (the one the table describes)."""
    fields: dict = {}
    if kind == EventKind.NEW_ORDER:
        fields["order"] = st.order
    elif kind == EventKind.ORDER_CHANGED:
        fields["order"] = make_order(st.order.accession)
    elif kind == EventKind.SCHEDULE:
        fields["schedule"] = make_order().schedule
    elif kind == EventKind.STATUS_CHANGED:
        fields["order_status"] = "IP"
    elif kind == EventKind.PATIENT_UPDATED:
        fields["patient"] = st.order.patient.model_copy(update={"sex": "U"})
    elif kind == EventKind.PATIENT_MERGED:
        fields["patient"] = Patient(mrn="SURVIVOR", issuer="HOSP")
        fields["merged_from"] = PatientKey(mrn=st.order.patient.mrn, issuer="HOSP")
    elif kind == EventKind.REPORT:
        fields["report"] = report(ReportStatus.FINAL, "a new final text")
    elif kind in (EventKind.PROCEDURE_COMPLETED, EventKind.STUDY_STABLE, EventKind.STUDY_LINKED):
        fields["study"] = stable_study()
    elif kind == EventKind.IMAGES_ARRIVING:
        fields["study"] = stable_study().model_copy(update={"stable": False, "instance_count": 1})
    return OrderEvent(kind=kind, source=EventSource.HL7, reason="table", **fields)


def observed(kind: EventKind, status: OrderStatus) -> Rule:
    st = state_in(status)
    outcome = apply_event(st, example(kind, st), T0)
    if not outcome.ok:
        return Rule("refuse")
    if outcome.changed:
        return Rule("move", st.status) if st.status != status else Rule("apply")
    return Rule("note") if outcome.note else Rule("same")


def expected(rule: Rule, status: OrderStatus) -> Rule:
    """A move to the status the order is already in is an applied change."""
    return Rule("apply") if rule.kind == "move" and rule.target == status else rule


@pytest.mark.parametrize("kind", list(EventKind), ids=lambda k: k.value)
def test_every_status_behaves_as_the_table_says(kind: EventKind) -> None:
    assert set(TABLE) == set(EventKind)
    wrong = {s.value: (TABLE[kind][s].text(), observed(kind, s).text()) for s in STATUSES
             if observed(kind, s) != expected(TABLE[kind][s], s)}
    assert not wrong, f"{kind.value}: status -> (table, transitions): {wrong}"


def test_docs_table_is_generated_from_the_table() -> None:
    assert DOC.read_text() == markdown(), "run: python -m radflow.domain.transition_table --write"


def test_apply_event_follows_the_table_not_a_copy_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change one cell and the state machine changes with it: the table is the only place the rule lives."""
    st = state_in(S.SCHEDULED)
    assert apply_event(st, example(EventKind.CANCEL, st), T0).ok
    monkeypatch.setitem(TABLE[EventKind.CANCEL], S.SCHEDULED, REFUSE)
    st = state_in(S.SCHEDULED)
    refused = apply_event(st, example(EventKind.CANCEL, st), T0)
    assert not refused.ok and "cannot cancel" in refused.error and st.status == S.SCHEDULED

    monkeypatch.setitem(TABLE[EventKind.PROCEDURE_STARTED], S.SCHEDULED, NOTE)
    st = state_in(S.SCHEDULED)
    noted = apply_event(st, example(EventKind.PROCEDURE_STARTED, st), T0)
    assert noted.ok and noted.note and not noted.changed and st.status == S.SCHEDULED
