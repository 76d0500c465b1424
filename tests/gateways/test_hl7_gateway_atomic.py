"""A message is applied wholly or not at all, and the ACK says which (issue 7 items 5 and 7), over MLLP."""

from __future__ import annotations

import pytest

from radflow.domain.definitions import OrderStatus
from tests.gateways.hl7_support import Hl7Stack, hl7_stack  # noqa: F401

pytestmark = pytest.mark.integration


def _obr(s: Hl7Stack, n: str, status: str) -> str:
    fields = {1: "1", 2: f"PL{n}{s.tag}^CPOE", 4: "CTHEAD^CT head^L", 18: f"ACC{n}{s.tag}", 25: status}
    return "|".join(["OBR"] + [fields.get(i, "") for i in range(1, 26)])


def _oru(s: Hl7Stack, ctl: str, *body: str) -> bytes:
    return "\r".join([
        f"MSH|^~\\&|DICTATION|GENHOSP|RADFLOW|RAD|20240305170000||ORU^R01|{ctl}|P|2.5",
        f"PID|1||{s.acc('MRN10001')}^^^GENHOSP^MR",
        *body,
    ]).encode()


def _nw(s: Hl7Stack, n: str) -> bytes:
    obr = "|".join(["OBR", "1", f"PL{n}{s.tag}^CPOE", "", "CTHEAD^CT head^L"] + [""] * 13 + [f"ACC{n}{s.tag}"])
    return "\r".join([
        f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|NW{n}-{s.tag}|P|2.3",
        f"PID|1||{s.acc('MRN10001')}^^^GENHOSP^MR||Testpatient^Alpha||19750412|F",
        f"ORC|NW|PL{n}{s.tag}^CPOE",
        obr,
    ]).encode()


async def test_oru_with_an_ack_run_into_it_is_refused_and_changes_nothing(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [nw] = await s.send(_nw(s, "1"))
    assert nw.code == "AA"
    broken = _oru(s, f"B{s.tag}", _obr(s, "1", "P"), "MSA|AA|NW1", "OBX|1|TX|&GDT||Preliminary text||||||P")
    [raw] = await s.send_raw(b"\x0b" + broken + b"\x1c\x0d")
    segments = raw.decode().split("\r")
    assert segments[1] == f"MSA|AR|B{s.tag}|segment MSA (segment 4) is not allowed in ORU\\S\\R01"
    assert segments[2].startswith("ERR||MSA^1|100^Segment sequence error^HL70357|E|")
    state = await s.state(f"ACC1{s.tag}")
    assert state.status == OrderStatus.ORDERED and state.report is None


async def test_two_order_oru_with_an_unknown_second_order_applies_nothing(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [nw] = await s.send(_nw(s, "1"))
    assert nw.code == "AA"
    both = _oru(s, f"U{s.tag}", _obr(s, "1", "F"), "OBX|1|TX|&GDT||Final one||||||F",
                _obr(s, "2", "F"), "OBX|1|TX|&GDT||Final two||||||F")
    [ack] = await s.send(both)
    assert ack.code == "AE" and ack.text.startswith("nothing applied: order 2 of the message")
    state = await s.state(f"ACC1{s.tag}")
    assert state.status == OrderStatus.ORDERED and state.report is None

    # Once the second order exists, the resend applies the whole message.
    [nw2] = await s.send(_nw(s, "2"))
    assert nw2.code == "AA"
    [again] = await s.send(both)
    assert again.code == "AA"
    for n, text in (("1", "Final one"), ("2", "Final two")):
        report = (await s.state(f"ACC{n}{s.tag}")).report
        assert report is not None and report.text == text


async def test_two_order_oru_with_a_refused_transition_applies_nothing(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    assert [a.code for a in await s.send(_nw(s, "1"), _nw(s, "2"))] == ["AA", "AA"]
    # A corrected report before any final is refused for order 2: order 1 must not get its final.
    both = _oru(s, f"C{s.tag}", _obr(s, "1", "F"), "OBX|1|TX|&GDT||Final one||||||F",
                _obr(s, "2", "C"), "OBX|1|TX|&GDT||Corrected two||||||C")
    [ack] = await s.send(both)
    assert ack.code == "AE" and "nothing applied: order 2" in ack.text and "corrected report before any final" in ack.text
    assert (await s.state(f"ACC1{s.tag}")).report is None


async def test_bare_cr_in_pid5_is_refused_with_its_location_and_changes_nothing(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [nw] = await s.send(s.msg("orm_o01_nw_v23.hl7"))
    assert nw.code == "AA"
    split = "\r".join([
        f"MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240302100000||ADT^A08^ADT_A01|CR{s.tag}|P|2.5",
        "EVN|A08|20240302100000",
        f"PID|1||{s.acc('MRN10001')}^^^GENHOSP^MR||Renamed^Jo",  # the bare CR splits PID-5 here
        "hn||19600101|M",
    ]).encode()
    [raw] = await s.send_raw(b"\x0b" + split + b"\x1c\x0d")
    segments = raw.decode().split("\r")
    assert segments[1].startswith(f"MSA|AR|CR{s.tag}|segment separator (bare CR) inside PID-5")
    assert segments[2].startswith("ERR||PID^1^5|100^Segment sequence error^HL70357|E|")
    p = (await s.state(s.acc("ACC1001"))).order.patient
    assert (p.name.family, p.birth_date, p.sex) == ("Testpatient", "19750412", "F")


async def test_bare_cr_in_report_text_is_repaired_and_shown_on_the_timeline(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [nw] = await s.send(_nw(s, "1"))
    assert nw.code == "AA"
    oru = _oru(s, f"T{s.tag}", _obr(s, "1", "P"), "OBX|1|TX|&GDT||Preliminary: first line", "second line||||||P")
    [ack] = await s.send(oru)
    assert ack.code == "AA"
    state = await s.state(f"ACC1{s.tag}")
    assert state.report is not None and state.report.text == "Preliminary: first line\nsecond line"
    [entry] = [e for e in state.timeline if e.kind == "REPORT"]
    assert "repaired: OBX-5: a bare CR inside the field was kept as a line break" in entry.summary


async def test_prelim_and_final_for_one_order_in_one_message_are_both_applied(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [nw] = await s.send(_nw(s, "1"))
    assert nw.code == "AA"
    both = _oru(s, f"PF{s.tag}", _obr(s, "1", "P"), "OBX|1|TX|&GDT||Preliminary one||||||P",
                _obr(s, "1", "F"), "OBX|1|TX|&GDT||Final one||||||F")
    [ack] = await s.send(both)
    assert ack.code == "AA"
    report = (await s.state(f"ACC1{s.tag}")).report
    assert report is not None and (report.status.value, report.text, report.version) == ("final", "Final one", 2)
    [again] = await s.send(both)  # the resend of the whole message changes nothing
    assert again.code == "AA"
    assert (await s.state(f"ACC1{s.tag}")).report.version == 2  # type: ignore[union-attr]
