"""Order index writes under concurrency, on a real dev server: shared transactions, nothing missed.

Concurrent orders share index transactions (one in flight, the rest queued and committed
together), the start runs beside the index write, and still every acknowledged order is
found by its patient, placer and study keys at once, with no sleep (visibility lags, the
index must not). The index is the SQLite file the gateway builds from its settings.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource
from radflow.service.index_writes import IndexWriter
from radflow.service.order_errors import TemporalUnavailable
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.factories import make_order, new_accession
from tests.gateways.hl7_support import stack_settings

pytestmark = pytest.mark.integration


def _orders(n: int, tag: str):
    orders = []
    for i in range(n):
        order = make_order(new_accession("GC"), mrn=f"GCM{i}{tag}")
        order.study_instance_uid = f"1.2.826.0.1.3680043.2.1125.{uuid.uuid4().int % 10**30}"
        orders.append(order)
    return orders


async def test_concurrent_orders_share_transactions_and_are_all_found_at_once(client: Client, task_queue: str,
                                                                             tmp_path) -> None:
    settings = stack_settings(tmp_path, task_queue)
    service = order_service(client, settings)
    orders = _orders(40, uuid.uuid4().hex[:6])
    async with build_worker(client, settings, task_queue=task_queue):
        results = await asyncio.gather(*(service.start_order(o, EventSource.HL7, f"C{o.accession}") for o in orders))
        assert all(r.created for r in results)
        # 40 writes (one per order, its three keys) asked for at once: one transaction in flight,
        # the rest queued behind it and committed together.
        writer = service.index_writer
        assert writer.signals_sent < writer.writes == 40
        assert service.index_store.lookup([f"mrn:{orders[0].patient.mrn}"])  # in the configured store

        missed = []
        for o in orders:
            placer = f"{o.placer_number}^{o.placer_system}"
            if (await service.open_orders_of_patient(o.patient.mrn) != [o.accession]
                    or await service.accession_for_placer(o.placer_number, placer) != o.accession
                    or await service.accession_for_study(o.study_instance_uid) != o.accession):
                missed.append(o.accession)
        assert missed == []


async def test_an_order_whose_index_write_failed_is_not_acknowledged_and_its_resend_indexes_it(
        client: Client, task_queue: str, tmp_path) -> None:
    settings = stack_settings(tmp_path, task_queue)
    service = order_service(client, settings)
    [order] = _orders(1, uuid.uuid4().hex[:6])
    working = service.index_writer

    async def unavailable(op: str, bucket: int, entries: dict[str, list[str]]) -> None:
        raise TemporalUnavailable("order index unavailable")

    async with build_worker(client, settings, task_queue=task_queue):
        service.index_writer = IndexWriter(unavailable)
        with pytest.raises(TemporalUnavailable):
            await service.start_order(order, EventSource.HL7, "ORM1")
        # The start went through beside the failed index write: the sender got no AA and resends.
        assert (await service.get_state(order.accession)).order.accession == order.accession
        service.index_writer = working
        resent = await service.start_order(order, EventSource.HL7, "ORM1")
        assert not resent.created
        assert await service.accession_for_study(order.study_instance_uid) == order.accession
        assert await service.open_orders_of_patient(order.patient.mrn) == [order.accession]
