"""Enhanced acknowledgment mode inside a frame of several messages (gateway logic, fake OrderService)."""

from __future__ import annotations

from tests.gateways.test_hl7_gateway_unit import FakeService, _gateway

MSH = "MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240301||ADT^A08|{ctl}|P|2.5|||{accept}|NE"


async def test_a_batch_carries_only_the_acks_msh15_asks_for() -> None:
    raw = await _gateway(FakeService()).handle("\r".join([
        MSH.format(ctl="B1", accept="NE"), "PID|1||M1",
        MSH.format(ctl="B2", accept="AL"), "PID|1||M2",
        MSH.format(ctl="B3", accept="SU"), "PID|1||M3",
        MSH.format(ctl="B4", accept="ER"), "PID|1||M4",
    ]).encode())
    segs = raw.split(b"\r")
    assert segs[0].startswith(b"BHS|") and segs[-1] == b"BTS|2"
    assert [s for s in segs if s.startswith(b"MSA")] == [b"MSA|CA|B2", b"MSA|CA|B3"]


async def test_a_single_message_with_ne_gets_no_answer_and_is_still_applied() -> None:
    svc = FakeService(open_orders=[["A1"]])
    raw = await _gateway(svc).handle("\r".join([MSH.format(ctl="N1", accept="NE"), "PID|1||M1"]).encode())
    assert raw == b""
    assert [acc for acc, _ in svc.events] == ["A1"]
