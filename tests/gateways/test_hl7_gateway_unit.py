"""Hl7Gateway decisions with a recording stand-in for OrderService (no Temporal: logic only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from radflow.domain.definitions import OrderStatus
from radflow.domain.hl7.ack import read_ack
from radflow.domain.order import EventResult, OrderData, OrderEvent
from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.service.ordering import EventRejected, OrderNotFound, StartResult, TemporalUnavailable
from radflow.infra.settings import Settings

MSH = "MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||{type}|{ctl}|P|2.3"


@dataclass
class FakeService:
    open_orders: list[list[str]] = field(default_factory=list)  # successive visibility answers
    fail: dict[str, Exception] = field(default_factory=dict)  # accession -> error on send_event
    placer_index: dict[str, str] = field(default_factory=dict)
    started: list[OrderData] = field(default_factory=list)
    events: list[tuple[str, OrderEvent]] = field(default_factory=list)
    allocated: list[str] = field(default_factory=list)
    moved: list[tuple[str, str, list[str]]] = field(default_factory=list)
    start_error: Exception | None = None

    async def start_order(self, order, source, control_id="", repairs=None, placer_key=""):
        if self.start_error:
            raise self.start_error
        self.started.append(order)
        return StartResult(order.accession, True, OrderStatus.ORDERED)

    async def send_event(self, accession, event):
        if accession in self.fail:
            raise self.fail[accession]
        self.events.append((accession, event))
        return EventResult(accession=accession, status=OrderStatus.SCHEDULED, changed=True)

    async def allocate_accession(self, placer_key):
        self.allocated.append(placer_key)
        return "RF00000042"

    async def accession_for_placer(self, placer_number, placer_key):
        return self.placer_index.get(placer_key)

    async def open_orders_of_patient(self, mrn):
        return self.open_orders.pop(0) if len(self.open_orders) > 1 else (self.open_orders[0] if self.open_orders else [])

    async def move_patient_orders(self, retired_mrn, surviving_mrn, accessions):
        self.moved.append((retired_mrn, surviving_mrn, accessions))


def _gateway(service: FakeService, **settings: object) -> Hl7Gateway:
    values: dict[str, object] = {}
    values.update(settings)
    return Hl7Gateway(service, Settings(_env_file=None, **values))  # type: ignore[arg-type]


async def _ack(gw: Hl7Gateway, *segments: str):
    ack = read_ack((await gw.handle("\r".join(segments).encode())).decode())
    assert ack is not None
    return ack


A40 = [MSH.format(type="ADT^A40", ctl="M1"), "PID|1||NEW^^^H^MR||Surv^Ivor", "MRG|OLD^^^H^MR"]


async def test_merge_reaches_the_open_orders_once_and_moves_them_in_the_index() -> None:
    svc = FakeService(open_orders=[["A1", "A2"], ["A1", "A2", "A3"]])
    ack = await _ack(_gateway(svc), *A40)
    assert ack.code == "AA"
    # One lookup (the index is exact: no second sweep), then the index follows the merge.
    assert [(acc, e.control_id) for acc, e in svc.events] == [("A1", "M1:A1"), ("A2", "M1:A2")]
    assert all(e.merged_from.mrn == "OLD" and e.patient.mrn == "NEW" for _, e in svc.events)
    assert svc.moved == [("OLD", "NEW", ["A1", "A2"])]


async def test_merge_not_applied_keeps_the_index() -> None:
    svc = FakeService(open_orders=[["A1"]], fail={"A1": TemporalUnavailable("down")})
    assert (await _ack(_gateway(svc), *A40)).code == "AE"
    assert svc.moved == []


async def test_update_fans_out_once_and_skips_refusals() -> None:
    svc = FakeService(open_orders=[["A1", "A2", "A3"]], fail={"A2": EventRejected("closed"), "A3": OrderNotFound("gone")})
    ack = await _ack(_gateway(svc), MSH.format(type="ADT^A08", ctl="U1"), "PID|1||M1^^^H^MR||New^Name")
    assert ack.code == "AA"
    assert [acc for acc, _ in svc.events] == ["A1"] and svc.moved == []


async def test_fan_out_with_temporal_down_is_ae() -> None:
    svc = FakeService(open_orders=[["A1", "A2"]], fail={"A2": TemporalUnavailable("down")})
    ack = await _ack(_gateway(svc), MSH.format(type="ADT^A08", ctl="U2"), "PID|1||M1^^^H^MR")
    assert ack.code == "AE" and ack.control_id == "U2" and "retry later" in ack.text


async def test_new_order_without_accession_is_allocated_from_the_placer_key() -> None:
    svc = FakeService()
    ack = await _ack(_gateway(svc), MSH.format(type="ORM^O01", ctl="N1"), "PID|1||M1^^^H^MR", "ORC|NW|P9^EPIC", "OBR|1|P9^EPIC||X")
    assert ack.code == "AA"
    assert svc.allocated == ["P9^EPIC"] and svc.started[0].accession == "RF00000042"


async def test_event_falls_back_to_the_placer_number() -> None:
    svc = FakeService(fail={"FILLER7": OrderNotFound("unknown order FILLER7")}, placer_index={"P7^CPOE": "RF7"})
    ack = await _ack(_gateway(svc), MSH.format(type="ORM^O01", ctl="C7"), "ORC|CA|P7^CPOE|FILLER7")
    assert ack.code == "AA"
    assert [acc for acc, _ in svc.events] == ["RF7"]


async def test_unknown_order_is_ae_204() -> None:
    svc = FakeService()
    raw = await _gateway(svc).handle("\r".join([MSH.format(type="ORM^O01", ctl="C8"), "ORC|CA|P8^CPOE"]).encode())
    assert b"MSA|AE|C8|unknown order" in raw and b"ERR|ORC^1^^204&Unknown key identifier&HL70357" in raw  # ERR-1 locates the ORC


async def test_unexpected_failure_is_ae_not_aa() -> None:
    svc = FakeService(start_error=RuntimeError("Failed client connect"))
    ack = await _ack(_gateway(svc), MSH.format(type="ORM^O01", ctl="N2"), "PID|1||M1", "ORC|NW|P1", "OBR|1|P1||X||||||||||||||A1")
    assert ack.code == "AE"


async def test_rejected_event_is_ae_with_the_reason() -> None:
    svc = FakeService(fail={"A5": EventRejected("CANCEL is not allowed when the order is ACQUIRED")})
    ack = await _ack(_gateway(svc), MSH.format(type="ORM^O01", ctl="C9"), "ORC|CA|P5|A5")
    assert ack.code == "AE" and "not allowed" in ack.text


async def test_two_messages_in_one_frame_get_a_batch_of_acks() -> None:
    svc = FakeService()
    raw = await _gateway(svc).handle("\r".join([MSH.format(type="ADT^A08", ctl="X1"), "PID|1||M1",
                                                MSH.format(type="ADT^A08", ctl="X2"), "PID|1||M2"]).encode())
    segs = raw.split(b"\r")
    assert segs[0].startswith(b"BHS|") and segs[-1] == b"BTS|2"
    assert [s for s in segs if s.startswith(b"MSA")] == [b"MSA|AA|X1", b"MSA|AA|X2"]


async def test_latin1_ack_is_encoded_like_the_message() -> None:
    svc = FakeService()
    msg = (MSH.format(type="ORM^O01", ctl="Ñ1") + "\rORC|CA|P1").encode("latin-1")
    raw = await _gateway(svc).handle(msg)
    assert b"MSA|AE|\xd11|" in raw  # MSA-2 echoed in the sender's bytes
