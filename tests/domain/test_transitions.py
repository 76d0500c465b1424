"""The pure order state machine: allowed and refused transitions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from radflow.domain.definitions import OrderStatus as S
from radflow.domain.definitions import ReportStatus as R
from radflow.domain.order import EventKind as K
from radflow.domain.order import OrderState, PatientKey, StudyInfo
from radflow.domain.transitions import apply_event, ready_for_acquisition
from tests.factories import event, make_order, report, stable_study

NOW = datetime(2030, 1, 1, 10, tzinfo=UTC)


def state(status: S, **kw) -> OrderState:
    return OrderState(order=make_order(), status=status, created_at=NOW, updated_at=NOW, **kw)


@pytest.mark.parametrize(
    ("start", "ev", "expected"),
    [
        (S.SCHEDULED, event(K.CANCEL), S.CANCELLED),
        (S.ORDERED, event(K.DISCONTINUE), S.DISCONTINUED),
        (S.IN_PROGRESS, event(K.DISCONTINUE), S.DISCONTINUED),
        (S.SCHEDULED, event(K.PROCEDURE_STARTED), S.IN_PROGRESS),
        (S.SCHEDULED, event(K.STATUS_CHANGED, order_status="IP"), S.IN_PROGRESS),
        (S.IN_PROGRESS, event(K.STATUS_CHANGED, order_status="CM"), S.ACQUIRED),
        (S.SCHEDULED, event(K.STATUS_CHANGED, order_status="CA"), S.CANCELLED),
        (S.ACQUIRED, event(K.REPORT, report=report(R.PRELIMINARY)), S.REPORTED),
        (S.SCHEDULED, event(K.REPORT, report=report(R.FINAL)), S.REPORTED),
        (S.IN_PROGRESS, event(K.STUDY_STABLE, study=stable_study()), S.IN_PROGRESS),
        (S.IN_PROGRESS, event(K.ACQUISITION_CONFIRMED), S.ACQUIRED),
        (S.IN_PROGRESS, event(K.PROCEDURE_DISCONTINUED, reason="patient unwell"), S.DISCONTINUED),
    ],
)
def test_allowed(start: S, ev, expected: S) -> None:
    st = state(start)
    out = apply_event(st, ev, NOW)
    assert out.ok, out.error
    assert st.status == expected


@pytest.mark.parametrize(
    ("start", "ev", "reason"),
    [
        (S.CANCELLED, event(K.REPORT, report=report(R.FINAL)), "final report for a cancelled order"),
        (S.IN_PROGRESS, event(K.CANCEL), "discontinue it instead"),
        (S.ACQUIRED, event(K.STATUS_CHANGED, order_status="SC"), "not allowed from ACQUIRED"),
        (S.SCHEDULED, event(K.STATUS_CHANGED, order_status="ZZ"), "unsupported order status"),
        (S.CANCELLED, event(K.PROCEDURE_STARTED), "PROCEDURE_STARTED is not allowed"),
        (S.DISCONTINUED, event(K.STUDY_STABLE, study=stable_study()), "study for a discontinued order"),
        (S.SCHEDULED, event(K.REPORT, report=report(R.CORRECTED)), "corrected report before any final"),
        (S.SCHEDULED, event(K.SCHEDULE), "schedule needs a start time"),
    ],
)
def test_refused_leaves_state_unchanged(start: S, ev, reason: str) -> None:
    st = state(start)
    before = st.model_dump()
    out = apply_event(st, ev, NOW)
    assert not out.ok and reason in out.error
    assert st.model_dump() == before


def test_report_sequence_versions_and_rules() -> None:
    st = state(S.ACQUIRED)
    assert apply_event(st, event(K.REPORT, report=report(R.PRELIMINARY, "p")), NOW).deliver_report
    assert apply_event(st, event(K.REPORT, report=report(R.FINAL, "f")), NOW).ok
    assert not apply_event(st, event(K.REPORT, report=report(R.PRELIMINARY, "p2")), NOW).ok
    dup = apply_event(st, event(K.REPORT, report=report(R.FINAL, "f")), NOW)
    assert dup.duplicate and not dup.changed
    assert apply_event(st, event(K.REPORT, report=report(R.CORRECTED, "c")), NOW).ok
    assert st.report is not None and st.report.version == 3 and st.report.status == R.CORRECTED


def test_status_under_attention_overlay_is_kept() -> None:
    st = state(S.NEEDS_ATTENTION, status_before_attention=S.SCHEDULED)
    assert apply_event(st, event(K.PROCEDURE_STARTED), NOW).ok
    assert st.status == S.NEEDS_ATTENTION and st.status_before_attention == S.IN_PROGRESS


def test_merge_rekeys_only_the_merged_mrn() -> None:
    st = state(S.SCHEDULED)
    old = st.order.patient
    survivor = old.model_copy(update={"mrn": "NEW9", "issuer": ""})
    wrong = apply_event(st, event(K.PATIENT_MERGED, patient=survivor, merged_from=PatientKey(mrn="OTHER")), NOW)
    assert not wrong.ok
    out = apply_event(st, event(K.PATIENT_MERGED, patient=survivor, merged_from=PatientKey(mrn=old.mrn)), NOW)
    assert out.ok and st.order.patient.mrn == "NEW9" and st.order.patient.issuer == old.issuer
    assert st.previous_patients[0].mrn == old.mrn


def test_acquisition_waits_for_mpps_referenced_instances() -> None:
    st = state(S.IN_PROGRESS)
    apply_event(st, event(K.PROCEDURE_COMPLETED, study=StudyInfo(study_instance_uid="1.2", expected_instance_count=50)), NOW)
    apply_event(st, event(K.STUDY_STABLE, study=stable_study(uid="1.2", instances=40)), NOW)
    ready, why = ready_for_acquisition(st)
    assert not ready and "40 of 50" in why
    apply_event(st, event(K.STUDY_STABLE, study=stable_study(uid="1.2", instances=50)), NOW)
    assert ready_for_acquisition(st) == (True, "")
    assert st.study.expected_instance_count == 50


@pytest.mark.parametrize("kind", [K.PROCEDURE_STARTED, K.PROCEDURE_COMPLETED])
@pytest.mark.parametrize("start", [S.ACQUIRED, S.REPORTED, S.DELIVERED])
def test_late_mpps_is_a_no_op(start: S, kind: K) -> None:
    st = state(start)
    out = apply_event(st, event(kind, study=StudyInfo(expected_instance_count=3)), NOW)
    assert out.ok and out.note and not out.changed and st.status == start
    assert "late procedure step" in out.summary
