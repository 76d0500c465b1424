"""The synthetic reproductions in tests/data/hl7/feeds (issue 7 items 3, 4, 5, 7, 11), file by file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from radflow.domain.definitions import OrderStatus
from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.domain.hl7.decode import decode, split_batch
from radflow.domain.hl7.mapping import CommandKind, Hl7Command, map_message
from radflow.domain.hl7.parse import ErrorCode, Hl7Error, ParsedMessage, parse_message
from radflow.domain.order import OrderState
from radflow.domain.transitions import apply_event
from tests.domain.hl7_fixtures import commands

FEEDS = Path(__file__).resolve().parent.parent / "data" / "hl7" / "feeds"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def text(name: str) -> str:
    return split_batch(decode((FEEDS / name).read_bytes()).text).messages[0]


def parsed(name: str) -> ParsedMessage:
    return parse_message(text(name))


def mapped(name: str) -> list[Hl7Command]:
    return map_message(parsed(name))


def stored() -> OrderState:
    [nw] = commands("orm_o01_nw_v23.hl7")
    assert nw.order is not None
    return OrderState(order=nw.order, status=OrderStatus.SCHEDULED, created_at=NOW, updated_at=NOW)


@pytest.mark.parametrize("name", ["a08_empty_fields.hl7", "a08_sex_deleted.hl7", "xo_empty_sex.hl7"])
def test_changes_keep_what_they_do_not_send(name: str) -> None:
    st = stored()
    before = st.order.patient.model_copy()
    [cmd] = mapped(name)
    assert cmd.event is not None and cmd.event.partial
    assert apply_event(st, cmd.event, NOW).ok
    p = st.order.patient
    assert (p.name, p.birth_date) == (before.name, before.birth_date)
    assert p.sex == ("" if name == "a08_sex_deleted.hl7" else "F")


def test_a40_with_only_the_identifier_keeps_demographics() -> None:
    st = stored()
    [cmd] = mapped("a40_identifier_only.hl7")
    assert cmd.event is not None and apply_event(st, cmd.event, NOW).ok
    p = st.order.patient
    assert (p.mrn, p.name.family, p.birth_date, p.sex) == ("MRN20002", "Testpatient", "19750412", "F")


def test_reused_msh10_is_a_different_message_but_a_resend_is_not() -> None:
    first, second, resent = (parsed(f"xo_reused_msh10_{n}.hl7") for n in ("first", "second", "first_resent"))
    assert first.control_id == second.control_id == resent.control_id == "F0005"
    assert first.message_key != second.message_key
    assert first.message_key == resent.message_key


def test_oru_with_an_msa_inside_is_refused_before_any_effect() -> None:
    [cmd] = mapped("oru_msa_inside.hl7")
    assert (cmd.kind, cmd.error_code, cmd.location) == (CommandKind.UNSUPPORTED, int(ErrorCode.SEGMENT_SEQUENCE), "MSA")


def test_two_order_oru_maps_to_two_events() -> None:
    cmds = mapped("oru_two_orders.hl7")
    assert [c.accession for c in cmds] == ["ACC1001", "ACC1002"]


def test_bare_cr_in_pid5_is_refused_and_in_obx5_repaired() -> None:
    with pytest.raises(Hl7Error) as err:
        parsed("a08_bare_cr_in_pid5.hl7")
    assert err.value.location == "PID-5"
    [cmd] = mapped("oru_bare_cr_in_obx5.hl7")
    assert cmd.event is not None and cmd.event.report is not None
    assert cmd.event.report.text == "Preliminary: first line\nsecond line" and cmd.event.repairs


def test_enhanced_mode_commit_ack() -> None:
    header = AckHeader.from_text(text("nw_enhanced_al_ne.hl7"))
    assert header.enhanced and header.wants_ack(AckCode.AA)
    ack = build_ack(header, AckCode.AA, control_id="A1", now=NOW)
    assert ack.split("\r")[1] == "MSA|CA|F0010"
