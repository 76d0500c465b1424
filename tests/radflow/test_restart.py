"""Acceptance 4: stop Temporal (SQLite file) and the worker between NW and ORU; the order continues."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.domain.order import OrderState
from radflow.gateways.mllp import serve_mllp
from radflow.devstack import DevServer, free_port
from radflow.infra.mllp_client import send_messages
from radflow.service.ordering import OrderService, TemporalUnavailable
from tests.radflow.hl7_messages import orm_nw, oru
from tests.stack import running_stack, stack_settings
from tests.waiting import eventually


async def _start_temporal(db: Path, log: Path) -> tuple[DevServer, Client]:
    server = DevServer(db_file=db, port=free_port(), ui_port=None, log_file=log)
    await server.start()
    return server, await Client.connect(server.address, data_converter=pydantic_data_converter)


async def _state_after_restart(service: OrderService, accession: str, timeout_s: float = 30.0) -> OrderState:
    # After a restart the server first offers the order's tasks to the old worker's sticky
    # queue and falls back to the shared queue only after the sticky timeout (~5 s), so the
    # first query may time out; it must succeed within a bounded time.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await service.get_state(accession)
        except TemporalUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _send_like_a_sender(port: int, message: bytes, attempts: int = 5) -> bytes:
    # An AE means "not applied, send again" (e.g. Temporal slow right after its restart);
    # senders resend the same message (same MSH-10), which radflow applies once.
    for _ in range(attempts):
        [ack] = await send_messages("127.0.0.1", port, [message])
        if b"MSA|AE" not in ack:
            return ack
        await asyncio.sleep(1.0)
    return ack


async def test_order_survives_dev_server_and_worker_restart(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    acc, mrn = f"R{tag}", f"M{tag}"
    db, log = tmp_path / "data" / "temporal.db", tmp_path / "temporal.log"

    # A stand-in EHR that acknowledges every ORU, so delivery after the restart is real.
    delivered: list[bytes] = []

    async def ehr(raw: bytes) -> bytes:
        delivered.append(raw)
        return build_ack(AckHeader.from_text(raw.decode("utf-8")), AckCode.AA).encode("utf-8")

    ehr_server = await serve_mllp(ehr, "127.0.0.1", 0)
    ehr_port = ehr_server.sockets[0].getsockname()[1]
    settings = stack_settings(f"tq-restart-{tag}", ehr_mllp_port=ehr_port)
    try:
        server, client = await _start_temporal(db, log)
        try:
            async with running_stack(client, settings, api=False) as stack:
                [ack] = await send_messages("127.0.0.1", stack.mllp_port, [orm_nw(acc, mrn, f"NW-{tag}").encode()])
                assert b"MSA|AA" in ack
        finally:
            server.stop()
        assert server.process is not None and server.process.poll() is not None

        # Same data dir, new process (and a new port: nothing may depend on the old one).
        server, client = await _start_temporal(db, log)
        try:
            async with running_stack(client, settings, api=False) as stack:
                before = await _state_after_restart(stack.service, acc)
                assert before.status.value == "ORDERED" and before.order.patient.mrn == mrn
                ack = await _send_like_a_sender(stack.mllp_port, oru(acc, mrn, "F", f"ORU-{tag}").encode())
                assert b"MSA|AA" in ack
                state = await eventually(lambda: stack.service.get_state(acc), lambda s: s.status.value == "DELIVERED", timeout_s=20)
        finally:
            server.stop()
    finally:
        ehr_server.close()

    assert state.status.value == "DELIVERED" and state.report is not None and state.report.status.value == "final"
    kinds = [(e.kind, e.control_id) for e in state.timeline]
    assert ("NEW_ORDER", f"NW-{tag}") in kinds and kinds.count(("REPORT", f"ORU-{tag}")) == 1
    assert state.deliveries["hl7"].startswith("v1:delivered")
    assert len(delivered) == 1 and acc.encode() in delivered[0]
