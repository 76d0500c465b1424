"""The order index shared by production processes on PostgreSQL: an order acknowledged by one
`radflow mllp` is found by its placer number on another one at once (different data dirs, as on
two hosts; they share only Temporal and RADFLOW_READ_MODEL_URL)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.definitions import ReportStatus
from radflow.devstack import DevServer, free_port
from radflow.infra.mllp_client import send_messages
from radflow.infra.order_index_store import PgOrderIndex
from radflow.infra.read_model_db import pool
from radflow.service.ordering import OrderService
from tests.radflow import procs
from tests.radflow.hl7_messages import orm_nw, oru
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def _ready(port: int) -> bool:
    resp = await procs.get(f"http://127.0.0.1:{port}/readyz")
    return resp is not None and resp.status_code == 200


def _without_accession(message: str, token: str, placer: str) -> bytes:
    # The test messages carry the accession in OBR-18 and the placer as PL<accession>: put the
    # placer in, take the accession out (radflow allocates one, as a RIS would).
    return message.replace(f"PL{token}", placer).replace(token, "").encode()


async def test_nw_on_one_gateway_oru_by_placer_on_another_right_after_the_aa(
        dev_server: DevServer, client: Client, pg_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    task_queue = f"tq-idx-{tag.lower()}"
    env = {
        "RADFLOW_TEMPORAL_ADDRESS": dev_server.address,
        "RADFLOW_TASK_QUEUE": task_queue,
        "RADFLOW_READ_MODEL_URL": pg_url,
        "RADFLOW_HEALTH_HOST": "127.0.0.1",
        "RADFLOW_LOG_LEVEL": "INFO",
        "RADFLOW_SYNC_CONSUMERS": "[]",
    }
    ports = {name: (free_port(), free_port()) for name in ("mllp-a", "mllp-b", "worker")}
    started = []
    for name, (port, health) in ports.items():
        role = "worker" if name == "worker" else "mllp"
        args = () if role == "worker" else ("--host", "127.0.0.1", "--port", str(port))
        started.append(procs.start(role, {**env, "RADFLOW_DATA_DIR": str(tmp_path / name),
                                          "RADFLOW_HEALTH_PORT": str(health)}, tmp_path / f"{name}.log", *args))
    with procs.running(*started):
        for _, health in ports.values():
            assert await eventually(lambda h=health: _ready(h), bool, timeout_s=60)
        index = PgOrderIndex(pool(pg_url))
        misses = []
        for i in range(5):
            token, placer, mrn = f"TOK{i}{tag}", f"IXP{i}{tag}", f"IXM{i}{tag}"
            # Odd orders come with their accession: only the index (or visibility, later) knows their
            # placer; even ones get an allocated accession.
            nw_text = orm_nw(token, mrn, f"NW{i}-{tag}").replace(f"PL{token}", placer)
            [nw] = await send_messages("127.0.0.1", ports["mllp-a"][0],
                                       [nw_text.encode() if i % 2 else _without_accession(nw_text, token, placer)])
            assert b"MSA|AA" in nw, nw
            # Durable and visible to every process once the AA is out: this process reads the row itself.
            assert index.lookup([f"placer:{placer}^CPOE"]), placer
            # No wait: the other gateway finds the order by its placer number through the shared index.
            [report] = await send_messages("127.0.0.1", ports["mllp-b"][0],
                                           [_without_accession(oru(token, mrn, "F", f"ORU{i}-{tag}"), token, placer)])
            if b"MSA|AA" not in report:
                misses.append(report)
        assert misses == []

        service = OrderService(client, task_queue=task_queue, index_store=index)
        for i in range(5):
            [accession] = index.lookup([f"placer:IXP{i}{tag}^CPOE"])[f"placer:IXP{i}{tag}^CPOE"]
            state = await service.get_state(accession)  # the report reached the order the NW created
            assert state.report is not None and state.report.status == ReportStatus.FINAL
            assert state.order.patient.mrn == f"IXM{i}{tag}"
    for name in ports:
        assert "Traceback" not in (tmp_path / f"{name}.log").read_text(), name
