"""Building the shared objects every process needs from settings, the same way everywhere."""

from __future__ import annotations

from temporalio.client import Client

from radflow.ordering import OrderService
from radflow.settings import Settings


def order_service(client: Client, settings: Settings) -> OrderService:
    return OrderService(
        client,
        task_queue=settings.task_queue,
        policy=settings.order_policy(),
        rpc_timeout_s=settings.temporal_rpc_timeout_s,
        accession_prefix=settings.accession_prefix,
        api_url=settings.api_url,
    )
