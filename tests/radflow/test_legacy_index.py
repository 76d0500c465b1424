"""Orders indexed by an older radflow (OrderIndex bucket workflows only) are still found exactly after
the upgrade, and a fresh install never queries a bucket. Real dev server, no sleeps."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource
from radflow.domain.order_index import patient_index_key, placer_index_key, study_index_key
from radflow.infra.order_index_store import SqliteOrderIndex
from radflow.service.ordering import OrderService
from radflow.worker import build_worker
from tests.factories import make_order, new_accession
from tests.gateways.hl7_support import stack_settings
from tests.legacy_buckets import legacy_index

pytestmark = pytest.mark.integration


def _order(mrn: str):
    order = make_order(new_accession("LG"), mrn=mrn)
    order.placer_system = "CPOE"
    order.study_instance_uid = f"1.2.826.0.1.3680043.2.1125.{uuid.uuid4().int % 10**30}"
    return order


def _keys(order) -> dict[str, list[str]]:
    return {patient_index_key(order.patient.mrn): [order.accession],
            placer_index_key(f"{order.placer_number}^{order.placer_system}"): [order.accession],
            study_index_key(order.study_instance_uid): [order.accession]}


async def test_orders_indexed_only_in_buckets_are_found_after_the_upgrade(client: Client, task_queue: str,
                                                                        tmp_path) -> None:
    settings = stack_settings(tmp_path, task_queue)
    mrn = f"LGM{uuid.uuid4().hex[:6]}"
    before, after = _order(mrn), _order(mrn)
    async with build_worker(client, settings, task_queue=task_queue):
        # The older radflow: the order started, its keys went to the buckets only.
        old = OrderService(client, task_queue=task_queue, index_store=SqliteOrderIndex(tmp_path / "unused.db"))
        await old._start(before, _start_of(old, before), _status(before), "NW1")
        await legacy_index(client, task_queue, _keys(before))

        upgraded = OrderService(client, task_queue=task_queue, index_store=SqliteOrderIndex(tmp_path / "order_index.db"))
        await upgraded.start_order(after, EventSource.HL7, "NW2")  # indexed in the database only
        placer = f"{before.placer_number}^CPOE"
        assert await upgraded.accession_for_placer(before.placer_number, placer) == before.accession
        assert await upgraded.accession_for_study(before.study_instance_uid) == before.accession
        assert await upgraded.allocate_accession(placer) == before.accession  # a resend without accession
        # Fan-out reaches the old order in its bucket and the new one in the database.
        assert await upgraded.open_orders_of_patient(mrn) == [before.accession, after.accession]
        assert upgraded.legacy_index.queries > 0 and upgraded.legacy_index.describes == d.INDEX_BUCKETS

        # A merge moves both to the survivor; the retired MRN keeps none, in either index.
        survivor = f"{mrn}S"
        await upgraded.move_patient_orders(mrn, survivor, [before.accession, after.accession])
        assert sorted(await upgraded.open_orders_of_patient(survivor)) == sorted([before.accession, after.accession])
        retired = patient_index_key(mrn)
        assert await upgraded._lookup_parts([retired], [retired]) == ({}, {})
        # A finished order leaves the bucket too (lazily, as before).
        await upgraded.handle(after.accession).terminate("test: finished")
        await upgraded.handle(before.accession).terminate("test: finished")
        assert await upgraded.open_orders_of_patient(survivor) == []
        assert await upgraded._index_lookup([patient_index_key(survivor)]) == {}


async def test_a_fresh_install_asks_the_buckets_nothing(client: Client, task_queue: str, tmp_path) -> None:
    settings = stack_settings(tmp_path, task_queue)
    service = OrderService(client, task_queue=task_queue, index_store=SqliteOrderIndex(tmp_path / "order_index.db"))
    orders = [_order(f"FM{i}{uuid.uuid4().hex[:6]}") for i in range(5)]
    async with build_worker(client, settings, task_queue=task_queue):
        for order in orders:
            await service.start_order(order, EventSource.HL7, f"NW{order.accession}")
        for order in orders:
            assert await service.accession_for_placer(order.placer_number, f"{order.placer_number}^CPOE") == order.accession
            assert await service.accession_for_study(order.study_instance_uid) == order.accession
            assert await service.open_orders_of_patient(order.patient.mrn) == [order.accession]
            # Misses too (they would ask the buckets of an upgraded install).
            assert await service.accession_for_study(f"{order.study_instance_uid}.9") is None
            await service.allocate_accession(f"NEW{order.placer_number}^CPOE")
    # Which buckets exist was asked once for the process (one describe per bucket id), never again,
    # and no bucket was queried or written.
    assert service.legacy_index.describes == d.INDEX_BUCKETS
    assert service.legacy_index.queries == 0
    ids = [d.index_workflow_id(task_queue, b) for b in range(d.INDEX_BUCKETS)]
    found = [wf async for wf in client.list_workflows(f"TaskQueue = '{task_queue}' AND WorkflowType = '{d.ORDER_INDEX_WORKFLOW}'")]
    assert found == [] and [i for i in ids if await _exists(client, i)] == []


async def _exists(client: Client, workflow_id: str) -> bool:
    from temporalio.service import RPCError

    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return True


def _status(order):
    return d.OrderStatus.SCHEDULED if order.schedule.is_scheduled() else d.OrderStatus.ORDERED


def _start_of(service: OrderService, order):
    from radflow.domain.order import StartOrder

    return StartOrder(order=order, source=EventSource.HL7, control_id="NW1", policy=service.policy)
