"""Reading MPPS attribute lists: scheduled references, performed series, reasons, N-SET rules."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from radflow.domain.dicom.mpps import InvalidMpps, merge, parse_step, validate_create, validate_set


def code(value: str, meaning: str) -> Dataset:
    ds = Dataset()
    ds.CodeValue, ds.CodingSchemeDesignator, ds.CodeMeaning = value, "DCM", meaning
    return ds


def create_attrs(status: str = "IN PROGRESS") -> Dataset:
    ds = Dataset()
    ref = Dataset()
    ref.AccessionNumber, ref.RequestedProcedureID, ref.StudyInstanceUID, ref.ScheduledProcedureStepID = "ACC1", "RP1", "1.2.3", "SPS1"
    ds.ScheduledStepAttributesSequence = [ref]
    ds.PerformedProcedureStepStatus = status
    ds.Modality = "CT"
    ds.PerformedStationAETitle = "CT01"
    ds.PerformedSeriesSequence = []
    return ds


def series(uid: str, sops: list[str]) -> Dataset:
    s = Dataset()
    s.SeriesInstanceUID = uid
    refs = []
    for sop in sops:
        r = Dataset()
        r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", sop
        refs.append(r)
    s.ReferencedImageSequence = refs
    return s


def test_create_must_be_in_progress() -> None:
    step = validate_create(create_attrs())
    assert step.refs[0].accession == "ACC1" and step.study_uid == "1.2.3" and step.station_ae == "CT01"
    with pytest.raises(InvalidMpps):
        validate_create(create_attrs("COMPLETED"))
    with pytest.raises(InvalidMpps):
        validate_create(Dataset())


def test_completed_counts_distinct_referenced_instances_per_series() -> None:
    stored = create_attrs()
    mods = Dataset()
    mods.PerformedProcedureStepStatus = "COMPLETED"
    mods.PerformedSeriesSequence = [series("1.2.3.1", ["1.9.1", "1.9.2", "1.9.2"]), series("1.2.3.2", ["1.9.3"])]
    assert validate_set(mods) == "COMPLETED"
    step = parse_step(merge(stored, mods))
    info = step.study_info()
    assert info.expected_instance_count == 3 and info.series_count == 2
    assert [(s.series_instance_uid, s.instance_count) for s in info.series] == [("1.2.3.1", 2), ("1.2.3.2", 1)]
    assert info.study_instance_uid == "1.2.3" and info.instance_count == 0
    assert stored.PerformedProcedureStepStatus == "IN PROGRESS"  # merge does not touch the stored copy


def test_discontinuation_reason_from_code_sequence() -> None:
    mods = Dataset()
    mods.PerformedProcedureStepStatus = "DISCONTINUED"
    mods.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code("110514", "Incorrect worklist entry selected")]
    assert parse_step(merge(create_attrs(), mods)).discontinuation_reason == "Incorrect worklist entry selected"


def test_set_rules() -> None:
    only_attrs = Dataset()
    only_attrs.PerformedProcedureStepDescription = "x"
    assert validate_set(only_attrs) == ""
    bad = Dataset()
    bad.PerformedProcedureStepStatus = "PAUSED"
    with pytest.raises(InvalidMpps):
        validate_set(bad)
    sched = Dataset()
    sched.PerformedProcedureStepStatus = "COMPLETED"
    sched.ScheduledStepAttributesSequence = [Dataset()]
    with pytest.raises(InvalidMpps):
        validate_set(sched)
