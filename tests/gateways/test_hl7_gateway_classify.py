"""Failure classification in Hl7Gateway: what can never succeed is AR, what a retry can fix is AE."""

from __future__ import annotations

import pytest

import radflow.gateways.hl7_gateway as hl7_gateway
from radflow.domain.hl7.ack import AckCode, read_ack
from radflow.gateways.mllp import fallback_ack
from radflow.domain.hl7.parse import ErrorCode
from radflow.service.ordering import TemporalUnavailable
from tests.gateways.test_hl7_gateway_unit import MSH, FakeService, _ack, _gateway

NW = [MSH.format(type="ORM^O01", ctl="N1"), "PID|1||M1^^^H^MR||Doe^Jo", "ORC|NW|P1^CPOE",
      "OBR|1|P1^CPOE||CT^CT head|||||||||||||||A1"]


async def test_a_bug_while_mapping_is_ar_not_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise ValueError("mapping bug")
    monkeypatch.setattr(hl7_gateway, "map_message", broken)
    ack = await _ack(_gateway(FakeService()), *NW)
    assert (ack.code, ack.control_id, ack.text) == ("AR", "N1", "message could not be interpreted")


async def test_temporal_unavailable_is_ae() -> None:
    ack = await _ack(_gateway(FakeService(start_error=TemporalUnavailable("down"))), *NW)
    assert ack.code == "AE" and "retry" in ack.text


async def test_refused_identifiers_never_reach_the_service() -> None:
    service = FakeService()
    ack = await _ack(_gateway(service), *[s.replace("M1^", "M\x001^") for s in NW])
    assert ack.code == "AR" and service.started == []


@pytest.mark.parametrize("head", [b"", b"MSH", b"MSH|^~\\&|" + b"\xff" * 50, b"\x00" * 10, b"MSH" + b"|" * 5000])
def test_fallback_ack_always_answers(head: bytes) -> None:
    ack = read_ack(fallback_ack(head, AckCode.AE, "internal error", ErrorCode.INTERNAL_ERROR).decode("latin-1"))
    assert ack is not None and ack.code == "AE"


async def test_a_frame_with_more_messages_than_the_limit_is_refused_whole() -> None:
    service = FakeService()
    nw = "\r".join(NW)
    raw = "\r".join([nw.replace("|N1|", f"|N{i}|") for i in range(4)]).encode()
    ack = read_ack((await _gateway(service, hl7_max_messages=3).handle(raw)).decode())
    assert ack is not None and ack.code == "AR" and "4 messages, more than the limit of 3" in ack.text
    assert service.started == []
    batch = (await _gateway(service, hl7_max_messages=4).handle(raw)).decode()
    assert batch.startswith("BHS") and batch.count("MSA|AA") == 4


async def test_large_messages_are_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    threads: list[tuple[int, int]] = []
    real = hl7_gateway.parse_message

    def recording(text, *args, **kwargs):
        threads.append((len(text), threading.get_ident()))
        return real(text, *args, **kwargs)

    monkeypatch.setattr(hl7_gateway, "parse_message", recording)
    gw = _gateway(FakeService())
    small = "\r".join(NW)
    large = small + "".join(f"\rOBX|{i}|TX|X||" + "report text " * 30 for i in range(300))
    assert (await _ack(gw, small)).code == "AA"
    assert (await _ack(gw, large)).code == "AA"
    loop_thread = threading.get_ident()
    assert [t == loop_thread for _, t in threads] == [True, False]
    assert threads[1][0] > 64 * 1024
