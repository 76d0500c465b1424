"""Property tests (hypothesis) of the MLLP frame reader and Hl7Gateway.handle, with a fake
OrderService (unit level, no Temporal): no exception escapes, every frame gets exactly one
answer, AA only when the message defined an order effect the service was asked to apply,
and nothing refused (AR) is applied."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from radflow.domain.definitions import OrderStatus
from radflow.domain.hl7.ack import AckHeader, read_ack
from radflow.domain.hl7.decode import decode, split_batch
from radflow.domain.order import EventResult, OrderData, OrderEvent
from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.gateways.mllp import FrameReader, frame
from radflow.service.ordering import OrderNotFound, StartResult
from radflow.infra.settings import Settings
from tests.hl7_fuzz_support import FUZZ, hl7_input


@dataclass
class RecordingService:
    """Accepts every start and event; knows one order by placer; records what was applied."""

    applied: list[str] = field(default_factory=list)
    asked: int = 0

    async def start_order(self, order: OrderData, source, control_id="", repairs=None, placer_key=""):
        self.applied.append(f"start {order.accession}")
        return StartResult(order.accession, True, OrderStatus.ORDERED)

    async def send_event(self, accession: str, event: OrderEvent):
        self.applied.append(f"{event.kind} {accession}")
        return EventResult(accession=accession, status=OrderStatus.SCHEDULED, changed=True)

    async def allocate_accession(self, placer_key: str) -> str:
        return "RF00000001"

    async def accession_for_placer(self, placer_number: str, placer_key: str) -> str | None:
        return "RF00000001"

    async def open_orders_of_patient(self, mrn: str) -> list[str]:
        self.asked += 1
        return ["RF00000001"]

    async def move_patient_orders(self, retired_mrn, surviving_mrn, accessions) -> None:
        self.applied.append(f"move {retired_mrn}")

    async def get_state(self, accession: str):
        raise OrderNotFound(accession)


_DATA_DIR = Path(tempfile.mkdtemp(prefix="radflow-fuzz-"))


def _answers(payload: bytes) -> list[str]:
    """MSA-1 of each ACK in the answer (one ACK, or a BHS batch of them)."""
    codes, sep = [], "|"
    for segment in payload.decode("latin-1").split("\r"):
        if segment[:3] in ("MSH", "BHS"):
            sep = segment[3]  # each ACK of a batch speaks its own message's delimiters
        elif segment.startswith("MSA"):
            parts = segment.split(sep)
            assert len(parts) > 2, payload[:300]
            codes.append(parts[1])
    return codes


@FUZZ
@given(hl7_input)
def test_gateway_answers_every_frame_once_and_aa_only_for_applied_effects(raw: bytes) -> None:
    service = RecordingService()
    gateway = Hl7Gateway(service, Settings(_env_file=None, data_dir=_DATA_DIR, hl7_merge_resweep_s=0))  # type: ignore[arg-type]
    payload = asyncio.run(gateway.handle(raw))
    messages = split_batch(decode(raw).text).messages
    if not payload:
        # Only a single message whose MSH-15 asked for no commit ACK may go unanswered.
        assert len(messages) == 1 and AckHeader.from_text(messages[0]).accept_ack_type
        return
    codes = _answers(payload)
    assert codes, payload[:200]
    assert set(codes) <= {"AA", "AE", "AR", "CA", "CE", "CR"}
    if len(messages) <= 1:
        assert len(codes) == 1
        ack = read_ack(payload.decode("latin-1"))
        assert ack is not None
        if codes[0] in ("AA", "CA"):
            assert service.applied or service.asked, "AA without any order effect"
        if codes[0] in ("AR", "CR"):
            assert not service.applied, f"refused but applied: {service.applied}"


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=8), st.binary(max_size=300), st.data())
def test_frame_reader_finds_every_frame_however_the_bytes_are_split(payloads: list[bytes], junk: bytes,
                                                                   data: st.DataObject) -> None:
    clean = [p.replace(b"\x0b", b"").replace(b"\x1c", b"") for p in payloads]
    stream = junk.replace(b"\x0b", b"").replace(b"\x1c", b"") + b"".join(frame(p) for p in clean)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    reader = FrameReader(max_frame=150)
    items = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        items += reader.feed(stream[a:b])
    expected = [("frame", p) if len(p) <= 150 else ("error", p[:4096]) for p in clean]
    assert [(kind, payload) for kind, payload, _ in items] == expected
    assert not reader.in_frame


@FUZZ
@given(st.binary(max_size=4000), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_frame_reader_never_raises_on_arbitrary_bytes(stream: bytes, sizes: list[int]) -> None:
    reader = FrameReader(max_frame=500)
    i = 0
    for size in sizes * (len(stream) // sum(sizes) + 1):
        if i >= len(stream):
            break
        for kind, payload, reason in reader.feed(stream[i : i + size]):
            assert kind in ("frame", "error") and (kind == "frame") == (reason == "")
            assert len(payload) <= 500 or kind == "error"
        i += size


GOOD = (b"MSH|^~\\&|CPOE|H|RADFLOW|R|20240301||ORM^O01|GOOD1|P|2.3\rPID|1||M1^^^H^MR||Doe^Jo\rORC|NW|P1^CPOE\r"
        b"OBR|1|P1^CPOE||CT^CT head|||||||||||||||A1")


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 3))  # a listener per example: fewer of them
@given(st.lists(hl7_input, min_size=1, max_size=4))
def test_over_a_socket_each_frame_is_answered_in_order_and_the_connection_stays_usable(raws: list[bytes]) -> None:
    payloads = [r.replace(b"\x0b", b"").replace(b"\x1c", b"") for r in raws] + [GOOD]

    async def exchange() -> tuple[list[bytes], list[bytes]]:
        gateway = Hl7Gateway(RecordingService(), Settings(_env_file=None, data_dir=_DATA_DIR, hl7_merge_resweep_s=0))  # type: ignore[arg-type]
        expected = [await gateway.handle(p) for p in payloads]
        server = await gateway.serve("127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
            writer.write(b"".join(frame(p) for p in payloads))
            got = []
            async with asyncio.timeout(20):
                for _ in [e for e in expected if e]:
                    chunk = await reader.readuntil(b"\x1c\r")
                    got.append(chunk[chunk.index(b"\x0b") + 1 : -2])
            writer.close()
            return [e for e in expected if e], got
        finally:
            server.close()

    expected, got = asyncio.run(exchange())
    # Same codes in the same order (control ids and timestamps of the ACK MSH differ per call).
    assert [_answers(g) for g in got] == [_answers(e) for e in expected]
    assert _answers(got[-1]) == ["AA"]
