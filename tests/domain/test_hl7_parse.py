"""python-hl7 parsing and 1-based field access (domain/hl7/parse.py)."""

from __future__ import annotations

import pytest

from radflow.domain.hl7.parse import ErrorCode, FieldSpec, Hl7Error, parse_message, version_tuple
from tests.domain.hl7_fixtures import message, parsed

MSH = "MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||ORM^O01^ORM_O01|C123|P|2.4"


def test_header_fields() -> None:
    pm = parse_message(message(MSH, "PID|1||M1"))
    assert (pm.message_type, pm.trigger, pm.structure) == ("ORM", "O01", "ORM_O01")
    assert (pm.control_id, pm.version, pm.sending_application) == ("C123", "2.4", "CPOE")
    assert pm.label == "ORM^O01"


def test_components_subcomponents_and_repetitions() -> None:
    pm = parse_message(message(MSH, "PID|1||M1^^^HOSP&1.2.3&ISO^MR~SS9^^^SSA^SS||Family^Given"))
    pid = pm.first("PID")
    assert pm.get(pid, 3) == "M1"
    assert pm.get(pid, 3, 4) == "HOSP"
    assert pm.get(pid, 3, 4, 2) == "1.2.3"
    assert pm.get(pid, 3, 1, 1, rep=2) == "SS9"
    assert pm.get(pid, 3, 5, rep=2) == "SS"
    assert pm.repetitions(pid, 3) == 2
    assert pm.get(pid, 5, 2) == "Given"
    # A leaf answers for index 1 deeper down, nothing else.
    assert pm.get(pid, 1, 1, 1) == "1" and pm.get(pid, 1, 2) == ""
    # Absent fields and segments are empty, not errors.
    assert pm.get(pid, 40) == "" and pm.get(pm.first("ZZZ"), 1) == ""


def test_explicit_null_reads_empty_but_is_detectable() -> None:
    pm = parsed("zsegments_v23.hl7")
    pid = pm.first("PID")
    assert pm.get(pid, 7) == "" and pm.is_null(pid, 7)
    assert pm.get(pid, 6) == "" and not pm.is_null(pid, 6)
    assert pm.raw(pid, 7) == '""'


def test_z_segments_are_kept() -> None:
    pm = parsed("zsegments_v23.hl7")
    assert pm.get(pm.first("ZPI"), 2) == "stuff"
    assert pm.get(pm.first("ZDS"), 1) == "1.2.826.0.1.3680043.9.7777.1011"
    assert [s[0][0] for s in pm.all_segments()] == ["MSH", "PID", "PV1", "ZPI", "ORC", "OBR", "ZDS", "ZXX"]


def test_custom_delimiters() -> None:
    pm = parsed("custom_delimiters_v24.hl7")
    assert (pm.enc.field, pm.enc.component, pm.enc.repetition, pm.enc.subcomponent) == ("#", "$", "%", "!")
    assert pm.message_type == "ORM" and pm.trigger == "O01"
    pid = pm.first("PID")
    assert pm.get(pid, 3, 4) == "GENHOSP"
    assert pm.get(pid, 5, 1) == "Delimiter$Test"  # \S\ is the component character of *this* message


def test_values_are_unescaped() -> None:
    pm = parse_message(message(MSH, r"NTE|1||a\F\b\S\c\.br\d"))
    assert pm.get(pm.first("NTE"), 3) == "a|b^c\nd"


def test_text_repetitions_keep_stray_components() -> None:
    pm = parse_message(message(MSH, r"OBX|1|TX|X||first^with caret~second \T\ line"))
    assert pm.text_repetitions(pm.first("OBX"), 5) == ["first^with caret", "second & line"]


def test_field_spec() -> None:
    assert FieldSpec.parse("obr-18") == FieldSpec("OBR", 18)
    assert FieldSpec.parse("IPC-9.1") == FieldSpec("IPC", 9, 1)
    assert str(FieldSpec.parse("ORC-3.2")) == "ORC-3.2"
    with pytest.raises(ValueError):
        FieldSpec.parse("OBR18")
    pm = parsed("orm_o01_nw_v23.hl7")
    assert pm.at("OBR-18") == "ACC1001" and pm.at("ORC-2.2") == "CPOE"


@pytest.mark.parametrize(
    ("text", "code", "location"),
    [
        ("PID|1||M1", ErrorCode.SEGMENT_SEQUENCE, "MSH"),
        ("MSH|^~\\&|A|B|C|D|2024||ORM^O01|C1|P|9.9", ErrorCode.UNSUPPORTED_VERSION, "MSH-12"),
        ("MSH|^~\\&|A|B|C|D|2024||ORM^O01|C1|P|2.1", ErrorCode.UNSUPPORTED_VERSION, "MSH-12"),
        ("MSH|^~\\&|A|B|C|D|2024||ORM^O01|C1|P", ErrorCode.REQUIRED_FIELD_MISSING, "MSH-12"),
        ("MSH|^~\\&|A|B|C|D|2024||ORM^O01||P|2.3", ErrorCode.REQUIRED_FIELD_MISSING, "MSH-10"),
        ("MSH|^~\\&|A|B|C|D|2024||ORM|C1|P|2.3", ErrorCode.REQUIRED_FIELD_MISSING, "MSH-9"),
        ("MSH|^^^^|A|B|C|D|2024||ORM^O01|C1|P|2.3", ErrorCode.DATA_TYPE, "MSH-2"),
    ],
)
def test_bad_headers_are_rejected_with_a_code(text: str, code: ErrorCode, location: str) -> None:
    with pytest.raises(Hl7Error) as err:
        parse_message(text)
    assert err.value.code == code and err.value.location == location


@pytest.mark.parametrize("version", ["2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.9"])
def test_supported_versions(version: str) -> None:
    assert parse_message(f"MSH|^~\\&|A|B|C|D|2024||ADT^A08|C1|P|{version}").version == version


def test_version_tuple() -> None:
    assert version_tuple("2.5.1") == (2, 5, 1)
    assert version_tuple("2.3") < (2, 3, 1) < version_tuple("2.4")
