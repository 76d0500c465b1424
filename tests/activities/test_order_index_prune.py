"""prune_order_index against the real dev server: which indexed orders have finished."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from radflow.activities.order_index import prune_order_index
from radflow.domain.definitions import EventSource
from radflow.domain.order_index import PruneRequest
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.worker import build_worker
from tests.factories import make_order, new_accession

pytestmark = pytest.mark.integration


async def test_prune_names_finished_and_unknown_orders_only(client: Client, task_queue: str, tmp_path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, task_queue=task_queue)  # type: ignore[call-arg]
    svc = OrderService(client, task_queue=task_queue)
    running, finished = make_order(new_accession("PR")), make_order(new_accession("PR"))
    async with build_worker(client, settings, task_queue=task_queue):
        for order in (running, finished):
            await svc.start_order(order, EventSource.HL7)
        await svc.handle(finished.accession).terminate("test")
        never = new_accession("PR")
        result = await ActivityEnvironment(client=client).run(
            prune_order_index, PruneRequest(accessions=[running.accession, finished.accession, never])
        )
    assert result.closed == [finished.accession, never]
