"""Issue 12.2: two `radflow dicom` processes on one PostgreSQL serve one worklist and share MPPS state.

A worker (own data dir) mirrors an order into the PostgreSQL worklist; two DICOM gateway processes
(own data dirs, own gateway ids, nothing shared but Temporal and PostgreSQL) both list it to DCMTK
findscu. An MPPS N-CREATE on the first is known to the second: a duplicate N-CREATE there is refused,
its N-SET COMPLETED is accepted, and the order hears both; the started order leaves both worklists.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from temporalio.client import Client

from radflow.domain.definitions import EventSource, OrderStatus
from radflow.devstack import DevServer, free_port
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.factories import make_order, new_accession
from tests.gateways.dicom.dcmtk import findscu, require_dcmtk
from tests.gateways.dicom.mpps_scu import MppsScu, completed, in_progress
from tests.radflow.test_dicom_command_limits import ROOT, _until_listening
from tests.stack import stack_settings
from tests.waiting import eventually

pytestmark = pytest.mark.integration

KEYS = ["AccessionNumber", "PatientID", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT01"]


@asynccontextmanager
async def radflow_dicom(dev_server: DevServer, task_queue: str, pg_url: str, data_dir: Path,
                        gateway_id: str) -> AsyncIterator[int]:
    """`radflow dicom` as an operator starts it; yields its port; SIGTERM at the end."""
    port = free_port()
    env = os.environ | {"RADFLOW_READ_MODEL_URL": pg_url, "RADFLOW_TASK_QUEUE": task_queue,
                        "RADFLOW_DICOM_GATEWAY_ID": gateway_id, "RADFLOW_LOG_LEVEL": "INFO"}
    cmd = [sys.executable, "-m", "radflow", "dicom", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir), "--temporal-address", dev_server.address]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        await _until_listening(port, proc)
        yield port
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
        assert b"Traceback" not in out, out.decode(errors="replace")[-3000:]


async def listed(port: int) -> list[str]:
    found = await findscu(port, KEYS)
    assert found.returncode == 0, found.output
    return [str(r.AccessionNumber) for r in found.responses]


async def test_two_gateways_one_worklist_and_shared_mpps(client: Client, dev_server: DevServer, task_queue: str,
                                                         pg_url: str, tmp_path: Path) -> None:
    require_dcmtk()
    settings = stack_settings(task_queue, data_dir=tmp_path / "worker", read_model_url=pg_url,
                              sync_consumers=["worklist"])
    service = order_service(client, settings)
    order = make_order(new_accession("PG"))
    async with build_worker(client, settings), \
            radflow_dicom(dev_server, task_queue, pg_url, tmp_path / "gw-a", "gw-a") as port_a, \
            radflow_dicom(dev_server, task_queue, pg_url, tmp_path / "gw-b", "gw-b") as port_b:
        await service.start_order(order, EventSource.HL7, "ORM-PG-1")
        # The worker wrote it once, into PostgreSQL; both gateways list it.
        assert order.accession in await eventually(lambda: listed(port_a), lambda acc: order.accession in acc,
                                                   timeout_s=20)
        assert order.accession in await listed(port_b)
        assert not (tmp_path / "gw-a" / "worklist.db").exists() and not (tmp_path / "worker" / "worklist.db").exists()

        uid = generate_uid()
        created = await asyncio.to_thread(MppsScu(port_a).create, in_progress(accession=order.accession), uid)
        assert created.status == 0x0000, created
        again = await asyncio.to_thread(MppsScu(port_b).create, in_progress(accession=order.accession), uid)
        assert again.status == 0x0111, again  # Duplicate SOP Instance: gateway B knows A's step
        done = await asyncio.to_thread(MppsScu(port_b).set, completed({generate_uid(): 3}), uid)
        assert done.status == 0x0000, done  # B validates the N-SET against the step A created
        late = await asyncio.to_thread(MppsScu(port_a).set, completed({generate_uid(): 3}), uid)
        assert late.status == 0x0110 and late.error_id == 0xA710, late  # ... and A sees it COMPLETED

        state = await eventually(lambda: service.get_state(order.accession),
                                 lambda s: s.study.expected_instance_count == 3, timeout_s=20)
        assert state.status == OrderStatus.IN_PROGRESS
        # Started: off the worklist of both gateways (mwl_show_started off).
        assert order.accession not in await eventually(lambda: listed(port_a), lambda acc: order.accession not in acc,
                                                       timeout_s=20)
        assert order.accession not in await listed(port_b)
