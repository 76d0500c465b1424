"""Images without an accession, right after their order: the announced Study UID finds it at once.

Real Temporal dev server; no sleep between the start and the lookup (visibility lags it).
"""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource
from radflow.service.ordering import OrderService
from radflow.worker import build_worker
from tests.factories import make_order, new_accession
from tests.gateways.hl7_support import stack_settings

pytestmark = pytest.mark.integration


async def test_announced_study_uid_is_found_right_after_the_start(client: Client, task_queue: str, tmp_path) -> None:
    settings = stack_settings(tmp_path, task_queue)
    service = OrderService(client, task_queue=task_queue, policy=settings.order_policy(), rpc_timeout_s=10)
    async with build_worker(client, settings, task_queue=task_queue):
        misses = 0
        for _ in range(10):
            order = make_order(new_accession("SLK"))
            order.study_instance_uid = f"1.2.826.0.1.3680043.2.1125.{uuid.uuid4().int % 10**30}"
            await service.start_order(order, EventSource.HL7, "ORM1")
            if await service.accession_for_study(order.study_instance_uid) != order.accession:
                misses += 1
        assert misses == 0
        assert await service.accession_for_study("1.2.3.4.5.6.7.8.9") is None
