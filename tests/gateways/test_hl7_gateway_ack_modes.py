"""MSH-15/MSH-16 acknowledgment modes over MLLP, exact ACK bytes (issue 7 item 11).

Original mode (both empty) answers AA/AE/AR; enhanced mode answers the commit ACK
CA/CE/CR when MSH-15 asks for it (AL always, NE never, ER on errors, SU on success).
"""

from __future__ import annotations

import pytest

from radflow.domain.definitions import OrderStatus
from tests.gateways.hl7_support import Hl7Stack, hl7_stack  # noqa: F401

pytestmark = pytest.mark.integration


def _nw(s: Hl7Stack, n: str, accept: str | None, app: str = "", event: str = "O01") -> bytes:
    modes = "" if accept is None else f"|||{accept}|{app}"
    obr = "|".join(["OBR", "1", f"PL{n}{s.tag}^CPOE", "", "CTHEAD^CT head^L"] + [""] * 13 + [f"ACC{n}{s.tag}"])
    return "\r".join([
        f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^{event}|C{n}{s.tag}|P|2.5{modes}",
        f"PID|1||MRN{s.tag}^^^GENHOSP^MR||Testpatient^Alpha||19750412|F",
        f"ORC|NW|PL{n}{s.tag}^CPOE",
        obr,
    ]).encode()


def _frames(*messages: bytes) -> bytes:
    return b"".join(b"\x0b" + m + b"\x1c\x0d" for m in messages)


def _expected(ack: bytes, trigger: str, body: str) -> bytes:
    """The exact ACK with the two values radflow generates (MSH-7 time, MSH-10 id) taken from `ack`."""
    msh = ack.decode().split("\r", 1)[0].split("|")
    head = f"MSH|^~\\&|RADFLOW|RAD|CPOE|GENHOSP|{msh[6]}||ACK^{trigger}^ACK|{msh[9]}|P|2.5"
    assert msh[6].endswith("+0000") and len(msh[9]) == 20
    return (head + "\r" + body).encode()


async def test_original_mode_answers_aa(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [ack] = await s.send_raw(_frames(_nw(s, "1", None)))
    assert ack == _expected(ack, "O01", f"MSA|AA|C1{s.tag}")


async def test_enhanced_al_answers_ca_after_the_order_is_durable(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [ack] = await s.send_raw(_frames(_nw(s, "1", "AL", "NE")))
    assert ack == _expected(ack, "O01", f"MSA|CA|C1{s.tag}")
    assert (await s.state(f"ACC1{s.tag}")).status == OrderStatus.ORDERED


async def test_enhanced_al_answers_cr_for_what_can_never_be_applied(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [ack] = await s.send_raw(_frames(_nw(s, "1", "AL", "AL", event="O99")))
    assert ack == _expected(
        ack, "O99",
        f"MSA|CR|C1{s.tag}|unsupported ORM event O99\rERR||MSH^1^9^1^2|201^Unsupported event code^HL70357|E||||unsupported ORM event O99",
    )


async def test_enhanced_al_answers_ce_for_what_a_retry_can_fix(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    xo = (
        f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|X{s.tag}|P|2.5|||AL|AL\r"
        f"PID|1||MRN{s.tag}^^^GENHOSP^MR\rORC|CA|PLX{s.tag}^CPOE|ACCX{s.tag}"
    ).encode()
    [ack] = await s.send_raw(_frames(xo))
    reason = f"unknown order (placer PLX{s.tag}, accession ACCX{s.tag})"
    assert ack == _expected(
        ack, "O01", f"MSA|CE|X{s.tag}|{reason}\rERR||ORC^1|204^Unknown key identifier^HL70357|E||||{reason}"
    )


async def test_enhanced_ne_and_er_send_no_ack_on_success_but_apply(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    # Three frames on one connection; only the last (original mode) is answered.
    [ack] = await s.send_raw(_frames(_nw(s, "1", "NE", "NE"), _nw(s, "2", "ER", "NE"), _nw(s, "3", None)))
    assert ack == _expected(ack, "O01", f"MSA|AA|C3{s.tag}")
    for n in "12":
        assert (await s.state(f"ACC{n}{s.tag}")).status == OrderStatus.ORDERED


async def test_enhanced_er_answers_errors_and_su_answers_only_success(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    acks = await s.send_raw(
        _frames(_nw(s, "1", "ER", "NE", event="O99"), _nw(s, "2", "SU", "NE", event="O99"), _nw(s, "3", "SU", "NE")),
        frames=2,
    )
    assert acks[0].decode().split("\r")[1].startswith(f"MSA|CR|C1{s.tag}|")
    assert acks[1] == _expected(acks[1], "O01", f"MSA|CA|C3{s.tag}")


async def test_only_msh16_valued_is_enhanced_mode_with_a_commit_ack(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [ack] = await s.send_raw(_frames(_nw(s, "1", "", "AL")))
    assert ack == _expected(ack, "O01", f"MSA|CA|C1{s.tag}")
