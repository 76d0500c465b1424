"""Property tests (hypothesis) over the pure HL7 path: decode -> parse -> map -> validate, and
the ORU builder. No exception but Hl7Error escapes, and every input is handled within the
per-example deadline (settings in tests/hl7_fuzz_support.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack, read_ack
from radflow.domain.hl7.decode import EncodingChars, decode, escape, split_batch, unescape
from radflow.domain.hl7.limits import Hl7Limits
from radflow.domain.hl7.mapping import CommandKind, map_message
from radflow.domain.hl7.oru import build_oru
from radflow.domain.hl7.parse import ErrorCode, Hl7Error, parse_message
from radflow.domain.hl7.validate import validate_commands
from radflow.domain.order import OrderState, PersonName
from tests.factories import make_order, report
from tests.hl7_fuzz_support import FUZZ, hl7_input

LIMITS = Hl7Limits()


@FUZZ
@given(hl7_input)
def test_decode_parse_map_validate_never_crash(raw: bytes) -> None:
    decoded = decode(raw)
    for text in split_batch(decoded.text).messages:
        header = AckHeader.from_text(text)
        try:
            pm = parse_message(text, decoded.codec, LIMITS)
            commands = map_message(pm, None, decoded.charset)
            assert commands, "a parsed message maps to at least one command"
            if commands[0].kind != CommandKind.UNSUPPORTED:
                validate_commands(commands, pm.control_id, LIMITS)
            code = AckCode.AA
        except Hl7Error as err:
            assert err.reason and isinstance(err.code, ErrorCode)
            code = AckCode.AR
        ack = read_ack(build_ack(header, code, "reason"))
        enhanced = {"AA": "CA", "AR": "CR"}[code.value]  # MSH-15 set: a commit ACK
        assert ack is not None and ack.code in (code.value, enhanced)


@FUZZ
@given(st.text(max_size=300))
def test_escape_round_trips(text: str) -> None:
    for enc in (EncodingChars(), EncodingChars("#", "$", "%", "!", ".")):
        assert unescape(escape(text, enc), enc) == text.replace("\r\n", "\n").replace("\r", "\n")


_free_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=400)


@FUZZ
@given(_free_text, _free_text, st.sampled_from(list(ReportStatus)))
def test_oru_builder_output_parses_back_to_the_same_report(text: str, family: str, status: ReportStatus) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    order = make_order("FUZZ1")
    order.patient.name = PersonName(family=family.replace("\n", " ").replace("\r", " "))
    state = OrderState(order=order, status=OrderStatus.REPORTED, report=report(status, text), created_at=now, updated_at=now)
    oru, control_id = build_oru(state, now=now)
    pm = parse_message(oru, limits=Hl7Limits(max_field_chars=10**7, max_report_chars=10**7, max_repetitions=10**6))
    assert pm.control_id == control_id
    [cmd] = map_message(pm)
    assert cmd.event is not None and cmd.event.report is not None
    sent = text.replace("\r\n", "\n").replace("\r", "\n")
    assert cmd.event.report.text == sent.strip("\n")
