"""A patient update must not be acknowledged for an order whose workflow task is failing (found by the chaos soak).

After a worker is killed mid-task the order's workflow tasks time out and Temporal answers
updates "Workflow Task in failed state" (FAILED_PRECONDITION / WorkflowNotReady) until a task
completes. The fan-out once read that as "order closed, skip it" and answered AA without
applying the A08; it is transient, so the sender must get AE and resend.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.domain.hl7.ack import read_ack
from radflow.gateways.hl7_gateway import Hl7Gateway
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.workflows.order_index import OrderIndexWorkflow

pytestmark = pytest.mark.integration
MSH = "MSH|^~\\&|{app}|GENHOSP|RADFLOW|RAD|20240301||{type}|{ctl}|P|2.3"


@workflow.defn(name=d.ORDER_WORKFLOW, sandboxed=False)
class FailingOrderWorkflow:
    """Stands in for an order whose every workflow task fails (as after a crash mid-task)."""

    @workflow.run
    async def run(self, start: dict) -> None:
        raise RuntimeError("workflow task fails")


async def _ack(gw: Hl7Gateway, *segments: str):
    ack = read_ack((await gw.handle("\r".join(segments).encode())).decode())
    assert ack is not None
    return ack


async def _until_not_ready(client: Client, accession: str) -> None:
    handle = client.get_workflow_handle(d.order_workflow_id(accession))
    for _ in range(60):
        try:
            await handle.execute_update(d.EVENT_UPDATE, {}, rpc_timeout=timedelta(seconds=2))
        except RPCError as err:
            if err.status == RPCStatusCode.FAILED_PRECONDITION:
                return
        except Exception:  # timeouts while the failing task is retried
            pass
        await asyncio.sleep(0.5)
    raise AssertionError("the order's workflow task never reached the failed state")


async def test_a08_to_an_order_whose_workflow_task_fails_is_ae(client: Client, task_queue: str, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)  # type: ignore[call-arg]
    gw = Hl7Gateway(OrderService(client, task_queue=task_queue, rpc_timeout_s=2), settings)
    mrn, acc = f"NR{task_queue[-6:]}", f"NRA{task_queue[-6:]}"
    async with Worker(client, task_queue=task_queue, workflows=[FailingOrderWorkflow, OrderIndexWorkflow]):
        obr = "|".join(["OBR", "1", "NRP^CPOE", "", "CTHEAD^CT head^L"] + [""] * 13 + [acc])
        nw = await _ack(gw, MSH.format(app="CPOE", type="ORM^O01", ctl="NR1"), f"PID|1||{mrn}^^^H^MR||Old^Name",
                        "ORC|NW|NRP^CPOE", obr)
        assert nw.code == "AA"
        await _until_not_ready(client, acc)
        a08 = await _ack(gw, MSH.format(app="HIS", type="ADT^A08", ctl="NR2"), "EVN|A08", f"PID|1||{mrn}^^^H^MR||New^Name")
    assert a08.code == "AE" and "retry later" in a08.text
