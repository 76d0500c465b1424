"""ORU^R01 delivery over MLLP to a real receiver started in the test (activities/hl7_delivery.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from radflow.activities.hl7_delivery import Hl7ReportDelivery
from radflow.domain.definitions import ErrorType, OrderStatus, ReportStatus
from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.domain.hl7.decode import decode
from radflow.domain.hl7.mapping import map_message
from radflow.domain.hl7.parse import ErrorCode, parse_message
from radflow.domain.order import OrderState, StepRequest
from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.gateways.mllp import serve_mllp
from radflow.devstack import free_port
from radflow.service.ordering import OrderService
from radflow.worker import build_worker
from tests.factories import make_order, report
from tests.gateways.hl7_support import ack_of, fixture, stack_settings

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class FakeEhr:
    """An MLLP receiver that records what it got and answers with a chosen ACK code."""

    code: AckCode = AckCode.AA
    received: list[bytes] = field(default_factory=list)
    silent: bool = False
    port: int = 0

    async def handle(self, payload: bytes) -> bytes:
        self.received.append(payload)
        if self.silent:
            await asyncio.sleep(2)
        text = payload.decode("utf-8")
        reason = "" if self.code == AckCode.AA else "missing PID-3" if self.code == AckCode.AR else "database busy"
        return build_ack(AckHeader.from_text(text), self.code, reason, None if self.code == AckCode.AA else ErrorCode.INTERNAL_ERROR,
                         application="EHR").encode()


@pytest.fixture
async def ehr() -> AsyncIterator[FakeEhr]:
    fake = FakeEhr()
    server = await serve_mllp(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    yield fake
    server.close()


def _request(status: ReportStatus = ReportStatus.FINAL, version: int = 1) -> StepRequest:
    rep = report(status, "Findings: none | really.\nImpression: normal.")
    rep.version = version
    state = OrderState(order=make_order("ACCDLV1"), status=OrderStatus.REPORTED, report=rep, created_at=NOW, updated_at=NOW)
    return StepRequest(consumer="hl7", milestone="report", accession="ACCDLV1", state=state)


def _delivery(port: int, timeout_s: float = 5.0) -> Hl7ReportDelivery:
    return Hl7ReportDelivery("127.0.0.1", port, timeout_s=timeout_s, receiving_application="EHR", receiving_facility="WARD")


async def test_aa_delivers_and_the_receiver_got_the_oru(ehr: FakeEhr) -> None:
    result = await ActivityEnvironment().run(_delivery(ehr.port).deliver_report_hl7, _request())
    assert result.outcome == "delivered" and "ACK AA" in result.detail
    [payload] = ehr.received
    segs = payload.decode().split("\r")
    assert [s[:3] for s in segs] == ["MSH", "PID", "ORC", "OBR", "OBX", "OBX"]
    assert segs[0].split("|")[4:6] == ["EHR", "WARD"] and segs[0].split("|")[8] == "ORU^R01^ORU_R01"
    assert segs[3].split("|")[25] == "F" and segs[3].split("|")[3] == "ACCDLV1"
    assert segs[4].split("|")[5] == "Findings: none \\F\\ really."
    # What the EHR got reads back, through our own parser, as the report we sent.
    [cmd] = map_message(parse_message(decode(payload).text))
    assert cmd.event.report.text == "Findings: none | really.\nImpression: normal."
    assert cmd.event.report.status == ReportStatus.FINAL


async def test_retried_delivery_sends_the_same_control_id(ehr: FakeEhr) -> None:
    activity = _delivery(ehr.port).deliver_report_hl7
    await ActivityEnvironment().run(activity, _request())
    await ActivityEnvironment().run(activity, _request())
    await ActivityEnvironment().run(activity, _request(ReportStatus.CORRECTED, version=2))
    ids = [p.decode().split("\r")[0].split("|")[9] for p in ehr.received]
    assert ids[0] == ids[1] != ids[2]


async def test_ar_is_non_retryable_rejection(ehr: FakeEhr) -> None:
    ehr.code = AckCode.AR
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(_delivery(ehr.port).deliver_report_hl7, _request())
    assert err.value.type == ErrorType.DELIVERY_REJECTED and err.value.non_retryable
    assert "missing PID-3" in err.value.message


async def test_ae_is_retryable(ehr: FakeEhr) -> None:
    ehr.code = AckCode.AE
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(_delivery(ehr.port).deliver_report_hl7, _request())
    assert err.value.type == ErrorType.DELIVERY_FAILED and not err.value.non_retryable
    assert "database busy" in err.value.message


async def test_refused_connection_and_timeout_are_retryable(ehr: FakeEhr) -> None:
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(_delivery(free_port()).deliver_report_hl7, _request())
    assert err.value.type == ErrorType.DELIVERY_FAILED and not err.value.non_retryable
    ehr.silent = True
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(_delivery(ehr.port, timeout_s=0.3).deliver_report_hl7, _request())
    assert err.value.type == ErrorType.DELIVERY_FAILED and "no ACK" in err.value.message


async def test_not_configured() -> None:
    result = await ActivityEnvironment().run(Hl7ReportDelivery("", 0).deliver_report_hl7, _request())
    assert result.outcome == "not_configured"


@pytest.mark.integration
async def test_report_from_the_gateway_reaches_the_ehr(client: Client, task_queue: str, tmp_path: Path, ehr: FakeEhr) -> None:
    """ORU in over MLLP -> workflow -> deliver_report_hl7 -> ORU out over MLLP; AA -> DELIVERED, then AR -> NEEDS_ATTENTION."""
    settings = stack_settings(tmp_path, task_queue, ehr_mllp_host="127.0.0.1", ehr_mllp_port=ehr.port,
                              report_consumers=["hl7"], step_max_attempts=1)
    service = OrderService(client, task_queue=task_queue, policy=settings.order_policy(), accession_prefix=settings.accession_prefix)
    gateway = Hl7Gateway(service, settings)
    tag = task_queue[-6:].upper()
    acc = f"ACC1001{tag}"
    async with build_worker(client, settings, task_queue=task_queue):
        for name in ("orm_o01_nw_v23.hl7", "oru_r01_f_v23.hl7"):
            assert ack_of(await gateway.handle(fixture(name, tag))).code == "AA"
        for _ in range(200):
            state = await service.get_state(acc)
            if state.status == OrderStatus.DELIVERED:
                break
            await asyncio.sleep(0.05)
        assert state.status == OrderStatus.DELIVERED and state.deliveries["hl7"] == "v1:delivered"
        [oru] = ehr.received
        assert f"|{acc}|".encode() in oru and b"|F|" in oru and b"FINDINGS:" in oru

        ehr.code = AckCode.AR
        corrected = fixture("oru_r01_c_v251.hl7", tag)  # finds the order through ORC-3
        assert ack_of(await gateway.handle(corrected)).code == "AA"
        for _ in range(200):
            state = await service.get_state(acc)
            if state.needs_attention:
                break
            await asyncio.sleep(0.05)
        # The status stays clinical (a correction is REPORTED again); the hl7 lane waits for an operator.
        assert state.status == OrderStatus.REPORTED and state.lanes["hl7"].attention is not None
        assert state.attention is not None and "DeliveryRejected" in state.attention.reason
        assert len(ehr.received) == 2  # rejected once, not retried
