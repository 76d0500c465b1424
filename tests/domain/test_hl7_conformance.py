"""docs/conformance.md cannot drift from the mapping: same rows, same outcomes, same text."""

from __future__ import annotations

import pytest

from radflow.domain.hl7.conformance import DOC, MARK, MESSAGE_ROWS, Row, document_with, render
from radflow.domain.hl7.mapping import ADT_EVENTS, MERGE_EVENT, ORDER_CONTROL_EVENTS, REPORT_STATUS, CommandKind, map_message
from radflow.domain.hl7.parse import parse_message
from tests.domain.hl7_fixtures import message, seg


def test_document_is_the_rendered_tables() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert MARK in text
    assert text == document_with(render(), text), "run: python -m radflow.domain.hl7.conformance --write"


def test_every_handled_event_control_and_status_has_exactly_one_row() -> None:
    def keys(prefix: str) -> list[str]:
        return [r.key for r in MESSAGE_ROWS if r.message.startswith(prefix)]

    assert sorted(keys("ADT")) == sorted(ADT_EVENTS | {MERGE_EVENT})
    assert sorted(keys("ORM")) == sorted(set(ORDER_CONTROL_EVENTS) | {"NW"})
    assert sorted(keys("ORU")) == sorted(REPORT_STATUS)


def _sample(row: Row) -> str:
    if row.message == "ADT":
        msh = f"MSH|^~\\&|HIS|H|RADFLOW|RAD|20240101||ADT^{row.key}|S1|P|2.5"
        tail = ["MRG|OLD1^^^H^MR"] if row.key == MERGE_EVENT else []
        return message(msh, "EVN|" + row.key, "PID|1||MRN1^^^H^MR||Fam^Giv", *tail)
    if row.message.startswith("ORM"):
        msh = "MSH|^~\\&|CPOE|H|RADFLOW|RAD|20240101||ORM^O01|S2|P|2.3"
        orc = seg("ORC", {1: row.key, 2: "PL1^CPOE", 5: "IP" if row.key == "SC" else ""})
        obr = seg("OBR", {1: "1", 2: "PL1^CPOE", 4: "CTHEAD^CT head^L", 18: "ACC1"})
        return message(msh, "PID|1||MRN1^^^H^MR||Fam^Giv", orc, obr)
    msh = "MSH|^~\\&|DICT|H|RADFLOW|RAD|20240101||ORU^R01|S3|P|2.3"
    obr = seg("OBR", {1: "1", 2: "PL1^CPOE", 18: "ACC1", 25: row.key})
    return message(msh, "PID|1||MRN1^^^H^MR", obr, "OBX|1|TX|&GDT||Report text||||||" + row.key)


@pytest.mark.parametrize("row", MESSAGE_ROWS, ids=[f"{r.message} {r.key}" for r in MESSAGE_ROWS])
def test_each_row_does_what_it_says(row: Row) -> None:
    cmds = map_message(parse_message(_sample(row)))
    assert [c.kind for c in cmds] == [row.kind], cmds[0].reason


@pytest.mark.parametrize(
    "text",
    [
        message("MSH|^~\\&|HIS|H|RADFLOW|RAD|20240101||ADT^A99|S4|P|2.5", "PID|1||MRN1"),
        message("MSH|^~\\&|CPOE|H|RADFLOW|RAD|20240101||ORM^O01|S5|P|2.3", "PID|1||MRN1", "ORC|ZZ|PL1",
                seg("OBR", {1: "1", 2: "PL1", 4: "X", 18: "A1"})),
        message("MSH|^~\\&|DICT|H|RADFLOW|RAD|20240101||ORU^R01|S6|P|2.3", "PID|1||MRN1",
                seg("OBR", {1: "1", 2: "PL1", 18: "A1", 25: "X"})),
        message("MSH|^~\\&|X|H|RADFLOW|RAD|20240101||QRY^A19|S7|P|2.3", "QRD|1"),
    ],
    ids=["ADT^A99", "ORC-1 ZZ", "OBR-25 X", "QRY^A19"],
)
def test_anything_else_is_refused(text: str) -> None:
    [cmd] = map_message(parse_message(text))
    assert cmd.kind == CommandKind.UNSUPPORTED
