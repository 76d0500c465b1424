"""`radflow dicom` as operators run it (its own process, RADFLOW_* environment): the allow-list, the
per-AE association cap, ARTIM and the wildcard matcher hold through the real settings path."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from radflow.domain.definitions import OrderStatus
from radflow.domain.dicom.mwl import entry_from_state
from radflow.domain.order import OrderState, PersonName
from radflow.gateways.dicom.worklist_store import WorklistStore
from radflow.devstack import DevServer, free_port
from tests.dicom_peers import closed_by_peer
from tests.factories import make_order
from tests.gateways.dicom.dcmtk import echoscu, findscu, require_dcmtk

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def _until_listening(port: int, proc: asyncio.subprocess.Process, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.returncode is None, "radflow dicom exited during startup"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"radflow dicom not listening on {port} after {timeout_s}s")


def fill_worklist(path: Path, count: int) -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    entries = []
    for i in range(count):
        order = make_order(f"CL{i:05d}", mrn=f"MCL{i:05d}")
        order.patient.name = PersonName(family=f"Testperson{i:05d}", given="Alexandra-Maria")
        entries.append(entry_from_state(OrderState(order=order, status=OrderStatus.SCHEDULED, created_at=t0, updated_at=t0)))
    WorklistStore(path).apply_many(entries)


def _hold(port: int, aet: str):
    ae = AE(ae_title=aet)
    ae.add_requested_context(Verification)
    return ae.associate("127.0.0.1", port, ae_title="RADFLOW")


def _closed_within(port: int, wait_s: float) -> bool:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        return closed_by_peer(sock, wait_s)


async def test_radflow_dicom_applies_its_limits_from_the_environment(dev_server: DevServer, tmp_path: Path) -> None:
    require_dcmtk()
    fill_worklist(tmp_path / "worklist.db", 300)  # the file the worker would write; the gateway reads it
    port = free_port()
    env = os.environ | {
        "RADFLOW_DICOM_ALLOWED_AETS": '["CT01","MR01","MODALITY1"]',
        "RADFLOW_DICOM_MAX_ASSOCIATIONS_PER_AE": "1",
        "RADFLOW_DICOM_ACSE_TIMEOUT_S": "1",
        "RADFLOW_LOG_LEVEL": "INFO",
    }
    cmd = [sys.executable, "-m", "radflow", "dicom", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(tmp_path), "--temporal-address", dev_server.address]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        await _until_listening(port, proc)
        code, output = await echoscu(port, aet="INTRUDER")
        assert code != 0 and "Calling AE Title Not Recognized" in output, output

        held = await asyncio.to_thread(_hold, port, "CT01")
        assert held.is_established
        try:
            code, output = await echoscu(port, aet="CT01")  # the same AE's second association
            assert code != 0 and "Rejected Transient" in output, output
            code, output = await echoscu(port, aet="MR01")
            assert code == 0 and "Success" in output, output
        finally:
            held.release()

        assert await asyncio.to_thread(_closed_within, port, 4.0), "a silent TCP connection outlived ARTIM (1 s)"

        started = time.monotonic()
        found = await findscu(port, ["PatientName=**********Z", "AccessionNumber"])
        assert found.returncode == 0 and found.responses == [], found.output
        assert time.monotonic() - started < 10
        found = await findscu(port, ["PatientName=*person*0042*", "AccessionNumber"])
        assert [r.AccessionNumber for r in found.responses] == ["CL00042"], found.output
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
    log = out.decode(errors="replace")
    assert "per-AE limit reached" in log and "calling AE title not recognised" in log, log[-3000:]
