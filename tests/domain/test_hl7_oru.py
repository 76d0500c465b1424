"""Outbound ORU^R01 (domain/hl7/oru.py): fields, the v2.5.1 ORU_R01 structure (checked by hl7apy), a parse round trip."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.hl7.mapping import map_message
from radflow.domain.hl7.oru import build_oru, oru_control_id
from radflow.domain.hl7.parse import parse_message
from radflow.domain.order import OrderState, PersonName, Visit
from tests.factories import make_order, report

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def _state(status: ReportStatus, text: str, version: int = 1) -> OrderState:
    order = make_order("ACC777")
    order.visit = Visit(patient_class="O", visit_number="V9")
    rep = report(status, text)
    rep.version = version
    rep.interpreter = PersonName(family="Reader", given="Rae")
    return OrderState(order=order, status=OrderStatus.REPORTED, report=rep, created_at=NOW, updated_at=NOW)


def test_oru_segments_and_fields() -> None:
    text, control_id = build_oru(_state(ReportStatus.FINAL, "Line 1\nLine 2"), receiving_application="EHR",
                                 receiving_facility="WARD", now=NOW)
    segs = text.split("\r")
    assert [s[:3] for s in segs] == ["MSH", "PID", "PV1", "ORC", "OBR", "OBX", "OBX"]
    msh = segs[0].split("|")
    assert msh[2:6] == ["RADFLOW", "RADFLOW", "EHR", "WARD"]
    assert msh[6] == "20300102030405+0000"
    assert msh[8:12] == ["ORU^R01^ORU_R01", control_id, "P", "2.5.1"]
    assert msh[17] == "UNICODE UTF-8"
    assert segs[1] == "PID|1||MRN001^^^HOSP^MR||Testperson^Alex||19800101|O"
    assert segs[2] == "PV1||O|||||||||||||||||V9"
    obr = segs[4].split("|")
    assert obr[3] == "ACC777" and obr[18] == "ACC777" and obr[25] == "F" and obr[24] == "CT"
    assert obr[4] == "CTHEAD^CT head without contrast^L"
    assert obr[32] == "&Reader&Rae"
    assert segs[5].split("|")[5] == "Line 1" and segs[6].split("|")[5] == "Line 2"
    assert segs[6].split("|")[11] == "F"


def test_control_id_is_stable_per_version() -> None:
    _, a = build_oru(_state(ReportStatus.FINAL, "x"))
    _, b = build_oru(_state(ReportStatus.FINAL, "x"))
    _, c = build_oru(_state(ReportStatus.CORRECTED, "x", version=2))
    assert a == b == oru_control_id("ACC777", 1, "F") and a != c and len(a) == 20


@pytest.mark.parametrize("status", list(ReportStatus))
def test_round_trip_through_our_parser(status: ReportStatus) -> None:
    original = "Findings | with ^ all & the ~ delimiters \\ here\n\nImpression: fine"
    text, control_id = build_oru(_state(status, original))
    [cmd] = map_message(parse_message(text))
    assert cmd.accession == "ACC777"
    assert cmd.event.report.status == status
    assert cmd.event.report.text == original
    assert cmd.event.report.interpreter.family == "Reader"
    assert cmd.event.report.received_control_id == control_id


def test_no_report_is_an_error() -> None:
    state = _state(ReportStatus.FINAL, "x")
    state.report = None
    with pytest.raises(ValueError):
        build_oru(state)


def test_structure_is_valid_v251_oru_r01_for_hl7apy() -> None:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message as hl7apy_parse

    text, _ = build_oru(_state(ReportStatus.FINAL, "Line 1\nLine | 2\n\nLine 4"), now=NOW)
    msg = hl7apy_parse(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert msg.validate()
    observation = msg.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION
    assert [c.name for c in observation.children] == ["ORC", "OBR"] + ["ORU_R01_OBSERVATION"] * 4


def test_crlf_in_report_text_is_one_line_break() -> None:
    # Found by the fuzz tests: "a\r\nb" went out as "a", an escaped break, and "b" (a blank line more).
    text, _ = build_oru(_state(ReportStatus.FINAL, "a\r\nb\rc"))
    [cmd] = map_message(parse_message(text))
    assert cmd.event is not None and cmd.event.report is not None
    assert cmd.event.report.text == "a\nb\nc"
