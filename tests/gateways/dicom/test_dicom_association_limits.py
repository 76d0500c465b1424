"""Idle peers cannot starve modalities: ARTIM on bare TCP connections, a per-calling-AE association cap and
the network idle timeout (issue 8, DICOM part of item 3). Real sockets, real DCMTK echoscu."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification
from temporalio.client import Client

from radflow.gateways.dicom.server import DicomGateway
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.dicom_peers import closed_by_peer
from tests.gateways.dicom.dcmtk import echoscu, require_dcmtk

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway(client: Client, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[DicomGateway]:
    require_dcmtk()
    settings = Settings(data_dir=tmp_path, dicom_host="127.0.0.1", dicom_port=0, **request.param)
    gw = DicomGateway(settings, OrderService(client))
    await gw.start()
    yield gw
    await gw.stop()


def _associate(port: int, aet: str) -> Association:
    ae = AE(ae_title=aet)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title="RADFLOW")


async def acceptors_gone(gateway: DicomGateway, timeout_s: float = 5.0) -> None:
    """Released/aborted associations leave the server's thread list a moment after the peer sees it."""
    assert gateway.ae is not None
    deadline = time.monotonic() + timeout_s
    while any(a.is_acceptor for a in gateway.ae.active_associations):
        assert time.monotonic() < deadline, "acceptor associations still running"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("gateway", [{"dicom_max_associations": 3, "dicom_acse_timeout_s": 1.5}], indirect=True)
async def test_bare_tcp_connections_are_dropped_after_artim(gateway: DicomGateway) -> None:
    # Before: the ARTIM wait was pynetdicom's 30 s default; connections that never send A-ASSOCIATE-RQ
    # held every slot for that long and modalities were rejected meanwhile.
    idle = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(3)]
    try:
        await asyncio.sleep(0.3)
        code, output = await echoscu(gateway.port)
        assert code != 0 and "Association Rejected" in output, output  # all slots held right now
        started = time.monotonic()
        closed = await asyncio.gather(*(asyncio.to_thread(closed_by_peer, s, 5.0) for s in idle))
        assert all(closed), f"idle connections still open after {time.monotonic() - started:.1f} s: {closed}"
        await acceptors_gone(gateway)
        code, output = await echoscu(gateway.port)
        assert code == 0 and "Success" in output, output
    finally:
        for s in idle:
            s.close()


@pytest.mark.parametrize("gateway", [{"dicom_max_associations": 4, "dicom_max_associations_per_ae": 2}], indirect=True)
async def test_one_calling_ae_cannot_take_every_slot(gateway: DicomGateway) -> None:
    held = [await asyncio.to_thread(_associate, gateway.port, "IDLER") for _ in range(2)]
    try:
        assert all(a.is_established for a in held)
        # Before: a third (and fourth) idle association from the same AE was accepted, then the
        # modality below was refused until the idle ones timed out.
        extra = [await asyncio.to_thread(_associate, gateway.port, "IDLER") for _ in range(2)]
        assert [a.is_rejected for a in extra] == [True, True]
        code, output = await echoscu(gateway.port, aet="CT01")
        assert code == 0 and "Success" in output, output
        # Another AE has its own share.
        other = await asyncio.to_thread(_associate, gateway.port, "MR01")
        assert other.is_established
        other.release()
    finally:
        for a in held:
            a.release()
    await acceptors_gone(gateway)
    # Released slots are free again for that AE.
    again = await asyncio.to_thread(_associate, gateway.port, "IDLER")
    assert again.is_established
    again.release()


@pytest.mark.parametrize("gateway", [{"dicom_max_associations": 2, "dicom_network_timeout_s": 1.0}], indirect=True)
async def test_idle_associations_are_aborted_after_the_network_timeout(gateway: DicomGateway) -> None:
    held = [await asyncio.to_thread(_associate, gateway.port, f"IDLE{i}") for i in range(2)]
    assert all(a.is_established for a in held)
    code, output = await echoscu(gateway.port)
    assert code != 0 and "Association Rejected" in output, output  # full while they idle

    async def aborted() -> bool:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            if all(not a.is_established for a in held):
                return True
            await asyncio.sleep(0.1)
        return False

    assert await aborted(), "idle associations were not closed by the gateway"
    assert all(a.is_aborted for a in held)
    await acceptors_gone(gateway)
    code, output = await echoscu(gateway.port)
    assert code == 0 and "Success" in output, output
