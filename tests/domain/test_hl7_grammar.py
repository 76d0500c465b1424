"""Segment grammar and bare-CR repair (domain/hl7/grammar.py), checked before any effect."""

from __future__ import annotations

import pytest

from radflow.domain.hl7.grammar import allowed_segments, known_segments
from radflow.domain.hl7.mapping import CommandKind, map_message
from radflow.domain.hl7.parse import ErrorCode, Hl7Error, parse_message
from tests.domain.hl7_fixtures import message, seg

ORU = "MSH|^~\\&|DICT|GENHOSP|RADFLOW|RAD|20240305170000||ORU^R01|G1|P|2.3"
ADT = "MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240305170000||ADT^A08|G2|P|2.4"
PID = "PID|1||MRN1^^^H^MR||Fam^Giv||19800101|F"
OBR = seg("OBR", {1: "1", 2: "PL1^CPOE", 18: "ACC1", 25: "F"})


def test_bare_cr_inside_report_text_is_a_repaired_line_break() -> None:
    pm = parse_message(message(ORU, PID, OBR, "OBX|1|TX|&GDT||first line", "second line||||||F"))
    assert pm.repairs == ["OBX-5: a bare CR inside the field was kept as a line break"]
    [cmd] = map_message(pm)
    assert cmd.event is not None and cmd.event.report is not None
    assert cmd.event.report.text == "first line\nsecond line"
    assert cmd.event.repairs == pm.repairs


@pytest.mark.parametrize(
    ("segments", "location"),
    [
        ([ADT, "PID|1||MRN1^^^H^MR||Fam^Gi", "ven||19800101|F"], "PID-5"),  # the case
        ([ADT, "PID|1||MRN1^^^H^MR||Fam", "^Given||19800101|F"], "PID-5"),
        ([ADT, "PID|1||MRN1^^^H^MR||Fam^Giv||1980", "0101|F"], "PID-7"),
        ([ADT, PID, "ABC|1|x"], "ABC"),  # looks like a segment, is not one we know
    ],
)
def test_bare_cr_elsewhere_or_unknown_segment_is_refused(segments: list[str], location: str) -> None:
    with pytest.raises(Hl7Error) as err:
        parse_message(message(*segments))
    assert err.value.code == ErrorCode.SEGMENT_SEQUENCE and err.value.location == location


def test_z_segments_and_optional_standard_segments_still_parse() -> None:
    pm = parse_message(message(ADT, "EVN|A08", PID, "PD1|||x", "ZPI|1|site value", "PV1|1|O", "ZXX"))
    assert pm.repairs == []
    [cmd] = map_message(pm)
    assert cmd.kind == CommandKind.PATIENT_FANOUT


@pytest.mark.parametrize(
    ("segments", "location", "why"),
    [
        ([ORU, PID, OBR, "OBX|1|TX|&GDT||text||||||F", "MSA|AA|X1"], "MSA", "MSA"),  # an ACK run into a report
        ([ORU, PID, OBR, "ERR|^^^207"], "ERR", "ERR"),
        ([ORU, PID, "OBX|1|TX|&GDT||orphan||||||F", OBR], "OBX", "before the first OBR"),
        ([ADT, PID, OBR], "OBR", "not allowed in ADT^A08"),
        ([ADT, PID, "ORC|NW|PL1"], "ORC", "not allowed"),
    ],
)
def test_segments_the_message_type_does_not_allow_are_refused(segments: list[str], location: str, why: str) -> None:
    [cmd] = map_message(parse_message(message(*segments)))
    assert cmd.kind == CommandKind.UNSUPPORTED
    assert (cmd.error_code, cmd.location) == (int(ErrorCode.SEGMENT_SEQUENCE), location)
    assert why in cmd.reason


def test_grammar_tables_come_from_the_hl7_definitions() -> None:
    assert {"PID", "OBR", "OBX", "MSA", "IPC", "MRG"} <= known_segments()
    assert "ABC" not in known_segments()
    oru = allowed_segments("ORU^R01")
    assert oru is not None and {"PID", "PV1", "ORC", "OBR", "OBX", "NTE", "TQ1", "SPM"} <= oru and "MSA" not in oru
    a40 = allowed_segments("ADT^A40")
    assert a40 is not None and "MRG" in a40 and "OBR" not in a40
    assert allowed_segments("ORM^O01") == allowed_segments("OMI^O23")  # one order mapping, one grammar
    assert allowed_segments("QRY^A19") is None
