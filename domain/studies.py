"""Study identity: which study of an order a DICOM study is, and whether it may join at all.

An order may hold several studies (a second acquisition, a re-scan): the first one is the
primary (`OrderState.study`, what the single-study fields show), later ones of the same
patient are `extra_studies`. Images of another patient never join: their accession matched
by mistake (a reused or mistyped accession at the modality), so the event is refused and
the images are quarantined as an unmatched study for an operator to resolve.
"""

from __future__ import annotations

from radflow.domain.order import OrderState, StudyInfo


def known_study(state: OrderState, uid: str) -> bool:
    return bool(uid) and any(s.study_instance_uid == uid for s in state.studies())


def same_patient(state: OrderState, patient_id: str, issuer: str = "") -> bool:
    """PatientID (with its issuer when both sides have one) against the order's patient,
    including MRNs merged into it; unknown ("") cannot contradict."""
    if not patient_id:
        return True
    order = state.order.patient
    keys = [(order.mrn, order.issuer)] + [(k.mrn, k.issuer) for k in state.previous_patients]
    return any(mrn == patient_id and (not issuer or not key_issuer or key_issuer == issuer) for mrn, key_issuer in keys)


def study_mismatch(state: OrderState, study: StudyInfo) -> str:
    """"" when the study may join the order, else why not (no identifiers: it reaches logs and ACKs)."""
    if known_study(state, study.study_instance_uid):
        return ""  # already part of the order (e.g. linked by an operator): later news follows it
    if not same_patient(state, study.patient_id, study.patient_issuer):
        return "images belong to another patient (PatientID differs from the order's): quarantined, not attached"
    return ""


def received_instances(state: OrderState) -> int:
    """Instances received over every study of the order (what the archive must confirm)."""
    return state.study.instance_count + sum(x.instance_count for x in state.extra_studies)


def merge_study(state: OrderState, study: StudyInfo) -> bool:
    """Fold the study's latest counts into the order; True when it is a further (not the primary) study."""
    uid = study.study_instance_uid
    primary = state.study
    if not primary.study_instance_uid or not uid or primary.study_instance_uid == uid:
        if uid and not state.order.study_instance_uid:
            state.order.study_instance_uid = uid
        state.study = _merged(primary, study, keep_expected=True)
        return False
    for index, extra in enumerate(state.extra_studies):
        if extra.study_instance_uid == uid:
            state.extra_studies[index] = _merged(extra, study)
            return True
    state.extra_studies.append(_merged(StudyInfo(), study))
    return True


def _merged(old: StudyInfo, new: StudyInfo, keep_expected: bool = False) -> StudyInfo:
    merged = new.model_copy()
    if keep_expected:
        merged.expected_instance_count = old.expected_instance_count or new.expected_instance_count
    merged.stable = old.stable or new.stable
    merged.archive_confirmed = old.archive_confirmed
    merged.patient_id = new.patient_id or old.patient_id
    merged.patient_issuer = new.patient_issuer or old.patient_issuer
    merged.archive_queue = new.archive_queue or old.archive_queue  # an operator's link carries none
    return merged


def fuller_copy(state: OrderState, study: StudyInfo) -> StudyInfo | None:
    """The order's copy of this study when `study` is another gateway's news with fewer of its
    instances (that gateway holds a partial copy), else None.

    A modality whose association breaks mid-study (its gateway died) resends the study to the
    other gateway; the first one, back up, still holds the part it got and reports it later.
    Its smaller count must not replace the whole study's, nor its queue the one the archive
    runs on: the order keeps the fuller copy.
    """
    uid = study.study_instance_uid
    known = next((s for s in state.studies() if uid and s.study_instance_uid == uid), None)
    if known is None or not known.archive_queue or not study.archive_queue or known.archive_queue == study.archive_queue:
        return None
    return known if study.instance_count < known.instance_count else None


def archive_queue(state: OrderState) -> str:
    """The gateway queue holding the order's images ("" = the shared queue).

    One queue per order: the first study that names one. A study resent whole to a second
    gateway keeps the fuller copy's queue (`fuller_copy`); a study split so that no gateway
    holds all of it is not supported (deploy/README.md)."""
    return next((s.archive_queue for s in state.studies() if s.archive_queue), "")
