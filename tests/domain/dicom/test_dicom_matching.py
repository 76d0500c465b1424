"""PS3.4 C.2.2.2 matching rules, as a table: (query keys, item values, expected match)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from radflow.domain.dicom.matching import MalformedQuery, compile_query

ITEM = {
    "PatientName": "Müller^Hans^^",
    "PatientID": "MRN-42",
    "AccessionNumber": "ACC100",
    "StudyInstanceUID": "1.2.3.4",
    "RequestedProcedureID": "RP7",
    "ScheduledProcedureStepSequence": [
        {
            "ScheduledStationAETitle": "CT01",
            "Modality": "CT",
            "ScheduledProcedureStepStartDate": "20300115",
            "ScheduledProcedureStepStartTime": "093000",
            "ScheduledProcedureStepID": "SPS1",
            "ScheduledProtocolCodeSequence": [{"CodeValue": "P1", "CodingSchemeDesignator": "L", "CodeMeaning": "Proto"}],
        }
    ],
}


def query(top: dict | None = None, sps: dict | None = None) -> Dataset:
    ds = Dataset()
    for k, v in (top or {}).items():
        setattr(ds, k, v)
    if sps is not None:
        item = Dataset()
        for k, v in sps.items():
            setattr(item, k, v)
        ds.ScheduledProcedureStepSequence = [item]
    return ds


CASES = [
    # universal matching
    ({"PatientName": ""}, None, True),
    ({"PatientName": "*"}, None, True),
    ({"PatientID": ""}, {}, True),
    # single value
    ({"PatientID": "MRN-42"}, None, True),
    ({"PatientID": "mrn-42"}, None, False),  # case-sensitive for LO
    ({"PatientID": " MRN-42 "}, None, True),  # padding ignored
    ({"AccessionNumber": "ACC10"}, None, False),
    # PN: case-insensitive, trailing empty components ignored, wildcards
    ({"PatientName": "müller^hans"}, None, True),
    ({"PatientName": "MÜLLER^HANS"}, None, True),
    ({"PatientName": "Mül*"}, None, True),
    ({"PatientName": "M?ller^*"}, None, True),
    ({"PatientName": "Muller*"}, None, False),
    ({"PatientName": "Hans*"}, None, False),
    # wildcards on other text VRs are case-sensitive
    ({"AccessionNumber": "ACC1*"}, None, True),
    ({"AccessionNumber": "acc1*"}, None, False),
    ({"AccessionNumber": "ACC?00"}, None, True),
    # UID list matching
    ({"StudyInstanceUID": ["9.9", "1.2.3.4"]}, None, True),
    ({"StudyInstanceUID": "1.2.3"}, None, False),
    # sequence matching inside the SPS
    (None, {"ScheduledStationAETitle": "CT01"}, True),
    (None, {"ScheduledStationAETitle": "MR01"}, False),
    (None, {"ScheduledStationAETitle": "CT*", "Modality": "CT"}, True),
    (None, {"Modality": ["MR", "CT"]}, True),
    (None, {"ScheduledStationAETitle": "CT01", "Modality": "MR"}, False),
    # date ranges
    (None, {"ScheduledProcedureStepStartDate": "20300115"}, True),
    (None, {"ScheduledProcedureStepStartDate": "20300116"}, False),
    (None, {"ScheduledProcedureStepStartDate": "20300101-20300131"}, True),
    (None, {"ScheduledProcedureStepStartDate": "20300116-"}, False),
    (None, {"ScheduledProcedureStepStartDate": "20300115-"}, True),
    (None, {"ScheduledProcedureStepStartDate": "-20300115"}, True),
    (None, {"ScheduledProcedureStepStartDate": "-20300114"}, False),
    # time ranges alone (bounds padded: 0930 includes 09:30:59)
    (None, {"ScheduledProcedureStepStartTime": "0900-1000"}, True),
    (None, {"ScheduledProcedureStepStartTime": "1000-"}, False),
    (None, {"ScheduledProcedureStepStartTime": "-0930"}, True),
    (None, {"ScheduledProcedureStepStartTime": "0930"}, True),
    # combined date + time range: 14 Jan 10:00 .. 15 Jan 09:00 excludes 15 Jan 09:30
    (None, {"ScheduledProcedureStepStartDate": "20300114-20300115", "ScheduledProcedureStepStartTime": "1000-0900"}, False),
    (None, {"ScheduledProcedureStepStartDate": "20300114-20300115", "ScheduledProcedureStepStartTime": "1000-0930"}, True),
    (None, {"ScheduledProcedureStepStartDate": "20300115", "ScheduledProcedureStepStartTime": "0800-0900"}, False),
    (None, {"ScheduledProcedureStepStartDate": "20300115-", "ScheduledProcedureStepStartTime": "0900-"}, True),
    # combined with an earlier-day lower bound: later time of day on a later day still matches
    (None, {"ScheduledProcedureStepStartDate": "20300114-", "ScheduledProcedureStepStartTime": "1000-"}, True),
    # nested sequence in the SPS
    (None, {"ScheduledProtocolCodeSequence": []}, True),
]


@pytest.mark.parametrize(("top", "sps", "expected"), CASES)
def test_matching_rules(top: dict | None, sps: dict | None, expected: bool) -> None:
    assert compile_query(query(top, sps)).matches(ITEM) is expected


def test_nested_code_sequence_key_matches_inside_sps() -> None:
    ds = query(None, {"Modality": ""})
    code = Dataset()
    code.CodeValue = "P1"
    ds.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence = [code]
    assert compile_query(ds).matches(ITEM)
    code.CodeValue = "P2"
    assert not compile_query(ds).matches(ITEM)


def test_missing_sequence_in_item_matches_universal_subkeys_only() -> None:
    item = {k: v for k, v in ITEM.items() if k != "ScheduledProcedureStepSequence"}
    assert compile_query(query(None, {"Modality": ""})).matches(item)
    assert not compile_query(query(None, {"Modality": "CT"})).matches(item)


@pytest.mark.parametrize(
    ("top", "sps"),
    [
        (None, {"ScheduledProcedureStepStartDate": "2030-01-15"}),
        (None, {"ScheduledProcedureStepStartDate": "yesterday"}),
        (None, {"ScheduledProcedureStepStartTime": "9am"}),
        ({"StudyInstanceUID": "1.2.*"}, None),
    ],
)
def test_malformed_queries_raise(top: dict | None, sps: dict | None) -> None:
    with pytest.raises(MalformedQuery):
        compile_query(query(top, sps))


def test_two_items_in_a_key_sequence_is_malformed() -> None:
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = [Dataset(), Dataset()]
    with pytest.raises(MalformedQuery):
        compile_query(ds)


def test_projection_returns_only_requested_keys_and_sequence_subkeys() -> None:
    q = compile_query(query({"PatientName": "", "AccessionNumber": ""}, {"ScheduledStationAETitle": "", "Modality": ""}))
    out = q.project({**ITEM, "SpecificCharacterSet": "ISO_IR 100"})
    assert {e.keyword for e in out} == {"SpecificCharacterSet", "PatientName", "AccessionNumber", "ScheduledProcedureStepSequence"}
    sps = out.ScheduledProcedureStepSequence[0]
    assert {e.keyword for e in sps} == {"ScheduledStationAETitle", "Modality"}
    assert sps.ScheduledStationAETitle == "CT01" and str(out.PatientName) == "Müller^Hans^^"


def test_empty_sequence_key_returns_whole_items() -> None:
    ds = Dataset()
    ds.ScheduledProcedureStepSequence = []
    out = compile_query(ds).project(ITEM)
    sps = out.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledProcedureStepID == "SPS1" and sps.ScheduledProtocolCodeSequence[0].CodeValue == "P1"


def test_unknown_and_private_keys_come_back_empty_and_are_flagged() -> None:
    ds = query({"PatientWeight": "", "PatientID": ""})
    ds.add_new(0x00991010, "LO", "x")
    q = compile_query(ds)
    out = q.project(ITEM)
    assert "PatientWeight" in out and out.PatientWeight in (None, "")
    assert 0x00991010 in q.unsupported
    assert 0x00991010 not in out


def test_index_hints_are_exact_values_only() -> None:
    q = compile_query(query({"PatientID": "MRN-42", "PatientName": "Mül*"}, {"ScheduledStationAETitle": "CT01",
                                                                           "Modality": "C*",
                                                                           "ScheduledProcedureStepStartDate": "20300101-"}))
    assert q.key("PatientID").exact == ["MRN-42"]
    assert q.key("PatientName").exact is None
    sps = q.key("ScheduledProcedureStepSequence").sub
    assert sps.key("ScheduledStationAETitle").exact == ["CT01"]
    assert sps.key("Modality").exact is None
    assert sps.key("ScheduledProcedureStepStartDate").date_range == ("20300101", "")
