"""Which indexed orders have closed: the order index drops them before it continues as new."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from radflow.domain import definitions as d
from radflow.domain.order_index import PruneRequest, PruneResult

CONCURRENCY = 16


@activity.defn(name=d.PRUNE_INDEX_ACTIVITY)
async def prune_order_index(request: PruneRequest) -> PruneResult:
    client = activity.client()
    gate = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def closed(accession: str) -> bool:
        nonlocal done
        async with gate:
            try:
                desc = await client.get_workflow_handle(d.order_workflow_id(accession)).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return True
                raise
            finally:
                done += 1
                if done % 200 == 0:
                    activity.heartbeat(done)
        return desc.status != WorkflowExecutionStatus.RUNNING

    flags = await asyncio.gather(*(closed(a) for a in request.accessions))
    return PruneResult(closed=[a for a, gone in zip(request.accessions, flags, strict=True) if gone])
