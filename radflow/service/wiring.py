"""Building the shared objects every process needs from settings, the same way everywhere."""

from __future__ import annotations

from temporalio.client import Client

from radflow.infra.order_index_store import OrderIndexStore, order_index_store
from radflow.service.ordering import OrderService
from radflow.service.patient_search import MrnHasher, load_hmac_key
from radflow.infra.settings import Settings


def mrn_hasher(settings: Settings) -> MrnHasher | None:
    if settings.search_hmac_key_file is None:
        return None
    return MrnHasher(load_hmac_key(settings.search_hmac_key_file), include_clear=settings.search_clear_mrn)


def order_service(client: Client, settings: Settings, index_store: OrderIndexStore | None = None) -> OrderService:
    """The order service of a gateway, API or worker; its order index is the configured one
    (SQLite file in the data dir, or the shared PostgreSQL database)."""
    return OrderService(
        client,
        task_queue=settings.task_queue,
        policy=settings.order_policy(),
        rpc_timeout_s=settings.temporal_rpc_timeout_s,
        accession_prefix=settings.accession_prefix,
        api_url=settings.api_url,
        mrn_hasher=mrn_hasher(settings),
        index_store=index_store if index_store is not None else order_index_store(settings),
        baseline=settings.order_baseline,
    )
