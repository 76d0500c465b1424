"""Study identity (domain/studies.py through the transitions): second study, other patient, linked study."""

from __future__ import annotations

from datetime import UTC, datetime

from radflow.domain.definitions import OrderStatus as S
from radflow.domain.order import EventKind as K
from radflow.domain.order import OrderState, PatientKey, SeriesInfo, StudyInfo
from radflow.domain.studies import archive_queue, fuller_copy, received_instances, same_patient
from radflow.domain.transitions import apply_event, ready_for_acquisition
from tests.factories import event, make_order

NOW = datetime(2030, 1, 1, 10, tzinfo=UTC)


def state(status: S = S.SCHEDULED) -> OrderState:
    return OrderState(order=make_order(mrn="MRN7"), status=status, created_at=NOW, updated_at=NOW)


def study(uid: str, n: int, patient: str = "MRN7", issuer: str = "") -> StudyInfo:
    return StudyInfo(study_instance_uid=uid, patient_id=patient, patient_issuer=issuer, series_count=1, instance_count=n,
                     modality="CT", series=[SeriesInfo(series_instance_uid=uid + ".1", modality="CT", instance_count=n)])


def test_first_study_is_primary_and_a_second_uid_of_the_same_patient_is_a_further_study() -> None:
    s = state()
    assert apply_event(s, event(K.STUDY_STABLE, study=study("1.2.1", 5)), NOW).ok
    out = apply_event(s, event(K.IMAGES_ARRIVING, study=study("1.2.2", 1)), NOW)
    assert out.ok and "further study" in out.summary
    out = apply_event(s, event(K.STUDY_STABLE, study=study("1.2.2", 3)), NOW)
    assert out.ok and out.summary == "further study 1.2.2 stable: 1 series, 3 instances"
    # The primary is untouched (this is what replaced it before), the order keeps its study UID.
    assert (s.study.study_instance_uid, s.study.instance_count, s.order.study_instance_uid) == ("1.2.1", 5, "1.2.1")
    assert [(x.study_instance_uid, x.instance_count, x.stable) for x in s.extra_studies] == [("1.2.2", 3, True)]
    assert [x.study_instance_uid for x in s.studies()] == ["1.2.1", "1.2.2"]
    assert received_instances(s) == 8 and ready_for_acquisition(s)[0]
    # News of the same further study updates it in place.
    assert apply_event(s, event(K.STUDY_STABLE, study=study("1.2.2", 4)), NOW).ok
    assert len(s.extra_studies) == 1 and s.extra_studies[0].instance_count == 4


def test_another_patients_study_is_refused_and_changes_nothing() -> None:
    s = state()
    assert apply_event(s, event(K.STUDY_STABLE, study=study("1.2.1", 5)), NOW).ok
    before = s.model_copy(deep=True)
    for kind in (K.IMAGES_ARRIVING, K.STUDY_STABLE):
        out = apply_event(s, event(kind, study=study("1.2.9", 2, patient="OTHER")), NOW)
        assert not out.ok and "another patient" in out.error and "OTHER" not in out.error
    assert s == before


def test_another_patients_first_study_is_refused_too() -> None:
    s = state()
    out = apply_event(s, event(K.IMAGES_ARRIVING, study=study("1.2.1", 5, patient="OTHER")), NOW)
    assert not out.ok and s.status == S.SCHEDULED and s.study.study_instance_uid == ""


def test_operator_link_overrides_the_mismatch_and_later_news_follows_it() -> None:
    s = state(S.IN_PROGRESS)
    assert apply_event(s, event(K.STUDY_LINKED, study=study("1.2.5", 4, patient="TYPO")), NOW).ok
    assert s.study.study_instance_uid == "1.2.5"
    assert apply_event(s, event(K.STUDY_STABLE, study=study("1.2.5", 6, patient="TYPO")), NOW).ok
    assert s.study.instance_count == 6


def test_patient_identity_rules() -> None:
    s = state()
    s.order.patient.issuer = "HOSP"
    s.previous_patients.append(PatientKey(mrn="OLD1", issuer="HOSP"))
    assert same_patient(s, "")  # unknown cannot contradict
    assert same_patient(s, "MRN7") and same_patient(s, "MRN7", "HOSP") and same_patient(s, "OLD1")  # merged MRN
    assert not same_patient(s, "MRN7", "OTHERHOSP")  # same number, another assigning authority
    assert not same_patient(s, "MRN8")


def test_the_archive_queue_comes_from_the_gateway_news_and_survives_a_link_without_one() -> None:
    s = state()
    assert archive_queue(s) == ""  # no images yet (or news from before gateway queues): the shared queue
    arriving = study("1.2.1", 1).model_copy(update={"archive_queue": "q-dicom-a"})
    assert apply_event(s, event(K.IMAGES_ARRIVING, study=arriving), NOW).ok
    # An operator's link (API) carries no queue: the study stays where its images are.
    assert apply_event(s, event(K.STUDY_STABLE, study=study("1.2.1", 5)), NOW).ok
    assert s.study.archive_queue == "q-dicom-a" and archive_queue(s) == "q-dicom-a"


def test_a_partial_copy_from_another_gateway_does_not_replace_the_fuller_one() -> None:
    """A modality failed over mid-study: gateway A has 2 instances, B all 3 (issue 12, failover)."""
    s = state(S.IN_PROGRESS)
    whole = study("1.2.9", 3).model_copy(update={"archive_queue": "q-dicom-gw-b"})
    partial = study("1.2.9", 2).model_copy(update={"archive_queue": "q-dicom-gw-a"})
    assert fuller_copy(s, partial) is None  # nothing known yet: A's news is all there is
    assert apply_event(s, event(K.STUDY_STABLE, study=whole), NOW).ok
    assert fuller_copy(s, partial) == s.study  # A's later news: the order keeps B's copy
    assert fuller_copy(s, whole) is None  # the same gateway's own news always counts
    assert fuller_copy(s, study("1.2.9", 4).model_copy(update={"archive_queue": "q-dicom-gw-a"})) is None  # more: it counts
    assert fuller_copy(s, study("1.2.8", 1).model_copy(update={"archive_queue": "q-dicom-gw-a"})) is None  # another study
