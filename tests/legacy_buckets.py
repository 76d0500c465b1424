"""Writing the order index the way radflow did before the read-model database: OrderIndex buckets.

An upgraded deployment holds orders indexed only there; tests make such orders with this
(the same signal-with-start the old OrderService sent before each AA).
"""

from __future__ import annotations

from temporalio.client import Client

from radflow.domain import definitions as d
from radflow.domain.order_index import IndexEntries, IndexState, by_bucket


async def legacy_index(client: Client, task_queue: str, entries: dict[str, list[str]],
                       signal: str = d.INDEX_ADD_SIGNAL) -> None:
    for bucket, part in by_bucket(entries).items():
        await client.start_workflow(d.ORDER_INDEX_WORKFLOW, IndexState(), id=d.index_workflow_id(task_queue, bucket),
                                    task_queue=task_queue, start_signal=signal,
                                    start_signal_args=[IndexEntries(entries=part)])
