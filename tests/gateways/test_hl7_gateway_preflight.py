"""The preflight of a message with several orders (gateway logic, fake OrderService): nothing is sent
unless every target exists, accepts its event and Temporal answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from radflow.domain.definitions import OrderStatus
from radflow.domain.hl7.ack import read_ack
from radflow.domain.order import OrderState
from radflow.service.ordering import OrderNotFound, TemporalUnavailable
from tests.factories import make_order
from tests.gateways.test_hl7_gateway_unit import FakeService, _gateway

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ORU = "MSH|^~\\&|DICT|H|RADFLOW|RAD|20240101||ORU^R01|P1|P|2.5"


def _obr(acc: str) -> str:
    return "|".join(["OBR", "1", f"PL{acc}"] + [""] * 15 + [acc] + [""] * 6 + ["F"])


@dataclass
class StatefulService(FakeService):
    states: dict[str, OrderState] = field(default_factory=dict)
    query_error: Exception | None = None

    async def get_state(self, accession: str) -> OrderState:
        if self.query_error:
            raise self.query_error
        if accession not in self.states:
            raise OrderNotFound(f"unknown order {accession}")
        return self.states[accession]


def _state(acc: str, status: OrderStatus = OrderStatus.ACQUIRED) -> OrderState:
    return OrderState(order=make_order(acc), status=status, created_at=NOW, updated_at=NOW)


async def _send(svc: StatefulService):
    raw = await _gateway(svc).handle("\r".join([ORU, "PID|1||M1", _obr("A1"), "OBX|1|TX|&GDT||one||||||F",
                                                 _obr("A2"), "OBX|1|TX|&GDT||two||||||F"]).encode())
    ack = read_ack(raw.decode())
    assert ack is not None
    return ack


async def test_all_targets_accept_then_both_are_applied() -> None:
    svc = StatefulService(states={"A1": _state("A1"), "A2": _state("A2")})
    assert (await _send(svc)).code == "AA"
    assert [acc for acc, _ in svc.events] == ["A1", "A2"]


async def test_a_closed_second_order_stops_the_whole_message() -> None:
    svc = StatefulService(states={"A1": _state("A1"), "A2": _state("A2", OrderStatus.CANCELLED)})
    ack = await _send(svc)
    assert ack.code == "AE" and ack.text.startswith("nothing applied: order 2 of the message (A2)")
    assert svc.events == []


async def test_temporal_down_during_the_preflight_applies_nothing() -> None:
    svc = StatefulService(states={"A1": _state("A1")}, query_error=TemporalUnavailable("down"))
    ack = await _send(svc)
    assert (ack.code, ack.text) == ("AE", "order store unavailable, retry later")
    assert svc.events == []


async def test_failure_after_the_preflight_says_what_was_applied() -> None:
    svc = StatefulService(states={"A1": _state("A1"), "A2": _state("A2")}, fail={"A2": TemporalUnavailable("lost")})
    ack = await _send(svc)
    assert ack.code == "AE" and ack.text.startswith("partly applied (orders A1), the rest not:")
    assert [acc for acc, _ in svc.events] == ["A1"]


async def test_two_groups_for_one_order_are_two_effects_not_a_resend() -> None:
    svc = StatefulService(states={"A1": _state("A1")})
    p = "|".join(["OBR", "1", "PLA1"] + [""] * 15 + ["A1"] + [""] * 6 + ["P"])
    raw = await _gateway(svc).handle("\r".join([ORU, "PID|1||M1", p, "OBX|1|TX|&GDT||prelim||||||P",
                                                 _obr("A1"), "OBX|1|TX|&GDT||final||||||F"]).encode())
    ack = read_ack(raw.decode())
    assert ack is not None and ack.code == "AA"
    keys = [e.message_key for _, e in svc.events]
    assert len(keys) == 2 and keys[0] != keys[1] and keys[0].endswith("#1") and keys[1].endswith("#2")
