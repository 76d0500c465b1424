"""Issue 12.1: archive_study runs where the images are, on the receiving gateway's own task queue.

Two DICOM gateways (separate spools, separate gateway ids) and one shared worker that does not
register archive_study at all (the production default): each order's study, sent to a different
gateway, reaches Orthanc and the order becomes ACQUIRED; its history shows archive_study
scheduled on the queue of the gateway that received the images, never on the shared queue.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource, OrderStatus, order_workflow_id
from radflow.gateways.dicom.server import start_dicom_gateway
from radflow.devstack import free_port
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.dicom_peers import Orthanc, orthanc, storescu  # noqa: F401  (module-scoped fixture)
from tests.dicom_synth import SyntheticStudy
from tests.factories import make_order, new_accession
from tests.gateways.dicom.test_dicom_storage_e2e import assert_all_stored, settings_for, timeline_text, wait_acquired

pytestmark = pytest.mark.integration


async def archive_queues(client: Client, accession: str) -> list[str]:
    history = await client.get_workflow_handle(order_workflow_id(accession)).fetch_history()
    return [e.activity_task_scheduled_event_attributes.task_queue.name for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name == "archive_study"]


async def test_each_gateway_archives_its_own_spool(client: Client, task_queue: str, tmp_path: Path,
                                                   orthanc: Orthanc) -> None:  # noqa: F811
    worker_settings = settings_for(tmp_path / "worker", task_queue, orthanc)
    assert not worker_settings.worker_spool_archive  # the shared queue has no archive_study
    gw = [settings_for(tmp_path / name, task_queue, orthanc, dicom_gateway_id=name, dicom_port=free_port())
          for name in ("gw-a", "gw-b")]
    assert gw[0].gateway_task_queue() == f"{task_queue}-dicom-gw-a"
    service = order_service(client, worker_settings)
    async with build_worker(client, worker_settings):
        gateways = [await start_dicom_gateway(s, order_service(client, s)) for s in gw]
        try:
            orders = [make_order(new_accession("GQ")) for _ in gw]
            for order in orders:
                await service.start_order(order, EventSource.HL7, f"ORM-{order.accession}")
            studies = []
            for order, s in zip(orders, gw, strict=True):
                study = SyntheticStudy(order.accession, series=[("CT", 3), ("CT", 2)], size=32)
                assert_all_stored(storescu("127.0.0.1", s.dicom_port, study.write(tmp_path / order.accession),
                                           called=s.dicom_ae_title))
                studies.append(study)
            states = [await wait_acquired(service, order.accession, 5) for order in orders]
        finally:
            for gateway in gateways:
                await gateway.stop()
    for order, study, state, s in zip(orders, studies, states, gw, strict=True):
        assert state.status == OrderStatus.ACQUIRED, timeline_text(state)
        assert state.study.archive_queue == s.gateway_task_queue()
        assert orthanc.study_instance_count(study.study_uid) == 5
        assert set(await archive_queues(client, order.accession)) == {s.gateway_task_queue()}
