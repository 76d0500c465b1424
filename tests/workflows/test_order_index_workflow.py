"""The legacy order index bucket on the real dev server: finished orders leave it at continue-as-new.

Buckets are no longer written by OrderService (radflow/infra/order_index_store.py); those of
an upgraded deployment keep running and pruning (radflow/service/legacy_index.py).
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource
from radflow.domain.order_index import IndexLookup, IndexState, index_bucket, patient_index_key
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.worker import build_worker
from tests.factories import make_order, new_accession
from tests.legacy_buckets import legacy_index

pytestmark = pytest.mark.integration


async def test_finished_orders_are_pruned_and_the_rest_carried_over(client: Client, task_queue: str, tmp_path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)  # type: ignore[call-arg]
    svc = OrderService(client, task_queue=task_queue)
    key = patient_index_key("PRUNEME")
    bucket_id = d.index_workflow_id(task_queue, index_bucket(key))
    async with build_worker(client, settings, task_queue=task_queue):
        # This bucket continues as new after ~60 events instead of thousands.
        await client.start_workflow(d.ORDER_INDEX_WORKFLOW, IndexState(history_limit=60), id=bucket_id, task_queue=task_queue)
        orders = [make_order(new_accession("IX"), mrn="PRUNEME") for _ in range(4)]
        for order in orders:
            await svc.start_order(order, EventSource.HL7)
            await legacy_index(client, task_queue, {key: [order.accession]})  # as an older radflow did
        for order in orders[:2]:
            await svc.handle(order.accession).terminate("test: finished")
        handle = client.get_workflow_handle(bucket_id)
        first_run = (await handle.describe()).run_id
        writes = 0
        while (await handle.describe()).run_id == first_run:  # (idempotent) writes until it rolls over
            await legacy_index(client, task_queue, {key: [orders[3].accession]})
            writes += 1
            assert writes < 100, "the bucket never continued as new"
        await asyncio.sleep(0.2)
        found = await handle.query(d.INDEX_LOOKUP_QUERY, IndexLookup(keys=[key]), result_type=dict[str, list[str]])
    assert found == {key: [o.accession for o in orders[2:]]}
