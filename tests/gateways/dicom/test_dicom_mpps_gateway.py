"""Acceptance 2 (MPPS half): a pynetdicom MPPS SCU drives orders through the DICOM gateway.

Real dev server + worker, orders created through OrderService, the API read through its
ASGI app, MPPS over loopback. Image arrival (ACQUIRED) is the storage side's test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from temporalio.client import Client

from radflow.api.app import create_app
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.dicom.matching import compile_query
from radflow.domain.dicom.uids import study_uid_for_accession
from radflow.gateways.dicom.server import DicomGateway
from radflow.service.ordering import OrderService
from radflow.service.unmatched import get_unmatched
from tests.factories import make_order
from tests.gateways.dicom.gateway_stack import DicomStack, dicom_settings, dicom_stack
from tests.gateways.dicom.mpps_scu import MppsScu, completed, discontinued, in_progress
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def mpps(client: Client, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DicomStack]:
    settings = dicom_settings(f"tq-mpps-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("mpps"))
    async with dicom_stack(client, settings) as stack:
        yield stack


@pytest.fixture(scope="module")
async def api(mpps: DicomStack) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(mpps.stack.settings, mpps.service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
        yield http


async def new_order(mpps: DicomStack) -> str:
    order = make_order(f"MP{uuid.uuid4().hex[:8].upper()}")
    await mpps.service.start_order(order, EventSource.HL7, uuid.uuid4().hex)
    row = await eventually(lambda: _row(mpps, order.accession), lambda r: r is not None and r.visible, timeout_s=10)
    assert row is not None and row.visible
    return order.accession


async def _row(mpps: DicomStack, acc: str):
    return mpps.gateway.worklist_store.get(acc)


def scu(mpps: DicomStack) -> MppsScu:
    return MppsScu(mpps.port)


async def test_in_progress_then_completed(mpps: DicomStack, api: httpx.AsyncClient) -> None:
    acc = await new_order(mpps)
    uid = generate_uid()
    ans = await asyncio.to_thread(scu(mpps).create, in_progress(accession=acc, study_uid=study_uid_for_accession(acc)), uid)
    assert ans.status == 0x0000, ans
    body = (await api.get(f"/orders/{acc}")).json()
    assert body["status"] == OrderStatus.IN_PROGRESS
    # started orders leave the worklist (mwl_show_started is off: STARTED rows are not served)
    row = await eventually(lambda: _row(mpps, acc), lambda r: r is not None and r.sps_status == "STARTED", timeout_s=10)
    assert row is not None and row.sps_status == "STARTED"
    query = Dataset()
    query.AccessionNumber = acc
    assert list(mpps.gateway.worklist_store.find(compile_query(query))) == []

    ans = await asyncio.to_thread(scu(mpps).set, completed({generate_uid(): 3, generate_uid(): 2}), uid)
    assert ans.status == 0x0000, ans
    state = await mpps.service.get_state(acc)
    assert state.status == OrderStatus.IN_PROGRESS  # ACQUIRED only once images + archive confirm
    assert state.study.expected_instance_count == 5
    assert state.order.study_instance_uid == study_uid_for_accession(acc)
    assert [e.kind for e in state.timeline if e.source == EventSource.DICOM] == ["PROCEDURE_STARTED", "PROCEDURE_COMPLETED"]
    body = (await api.get(f"/orders/{acc}")).json()
    assert body["status"] == OrderStatus.IN_PROGRESS

    # the step is final: further N-SETs fail with the PS3.4 error
    again = await asyncio.to_thread(scu(mpps).set, discontinued("too late"), uid)
    assert again.status == 0x0110 and again.error_id == 0xA710, again
    assert "may no longer be updated" in again.comment
    assert (await mpps.service.get_state(acc)).status == OrderStatus.IN_PROGRESS


async def test_discontinued_moves_the_order_with_the_reason(mpps: DicomStack, api: httpx.AsyncClient) -> None:
    acc = await new_order(mpps)
    uid = generate_uid()
    assert (await asyncio.to_thread(scu(mpps).create, in_progress(accession=acc), uid)).status == 0
    ans = await asyncio.to_thread(scu(mpps).set, discontinued("Patient refused to continue procedure", "110515"), uid)
    assert ans.status == 0x0000, ans
    body = (await api.get(f"/orders/{acc}")).json()
    assert body["status"] == OrderStatus.DISCONTINUED
    timeline = (await mpps.service.get_timeline(acc))
    assert any(e.kind == "PROCEDURE_DISCONTINUED" and "Patient refused to continue procedure" in e.summary for e in timeline)


async def test_mpps_without_accession_matches_through_the_worklist_keys(mpps: DicomStack) -> None:
    acc = await new_order(mpps)
    uid = generate_uid()
    ans = await asyncio.to_thread(scu(mpps).create, in_progress(requested_procedure_id=acc), uid)
    assert ans.status == 0x0000, ans
    assert (await mpps.service.get_state(acc)).status == OrderStatus.IN_PROGRESS
    record = mpps.gateway.mpps_store.get(uid)
    assert record is not None and record.accessions == [acc]


async def test_unscheduled_mpps_is_kept_and_surfaces_as_exception(mpps: DicomStack, api: httpx.AsyncClient) -> None:
    uid = generate_uid()
    ans = await asyncio.to_thread(scu(mpps).create, in_progress(accession="NO-SUCH-ORDER", patient_id="MRN-UNSCHED"), uid)
    assert ans.status == 0x0000, ans
    record = mpps.gateway.mpps_store.get(uid)
    assert record is not None and record.accessions == [] and record.status == "IN PROGRESS"
    item = await get_unmatched(mpps.stack.client, "mpps", uid)
    assert item is not None and item.details["accession"] == "NO-SUCH-ORDER" and item.details["status"] == "IN PROGRESS"
    listed = (await api.get("/exceptions", params={"kind": "mpps"})).json()["items"]
    assert any(i["key"] == uid for i in listed)

    ans = await asyncio.to_thread(scu(mpps).set, completed({generate_uid(): 4}), uid)
    assert ans.status == 0x0000, ans
    item = await get_unmatched(mpps.stack.client, "mpps", uid)
    assert item is not None and item.details["status"] == "COMPLETED" and item.details["referenced_instances"] == 4


async def test_protocol_errors(mpps: DicomStack) -> None:
    acc = await new_order(mpps)
    uid = generate_uid()
    bad = in_progress(accession=acc)
    bad.PerformedProcedureStepStatus = "COMPLETED"
    assert (await asyncio.to_thread(scu(mpps).create, bad, uid)).status == 0x0106
    assert (await asyncio.to_thread(scu(mpps).create, in_progress(accession=acc), uid)).status == 0x0000
    assert (await asyncio.to_thread(scu(mpps).create, in_progress(accession=acc), uid)).status == 0x0111
    assert (await asyncio.to_thread(scu(mpps).set, completed({}), generate_uid())).status == 0x0112
    wrong = completed({})
    wrong.PerformedProcedureStepStatus = "PAUSED"
    assert (await asyncio.to_thread(scu(mpps).set, wrong, uid)).status == 0x0106
    # an SCU that lets the SCP choose the instance UID gets one back and can N-SET it
    other = await new_order(mpps)
    created = await asyncio.to_thread(scu(mpps).create, in_progress(accession=other), None)
    assert created.status == 0x0000


async def test_refused_transition_is_a_failure_status(mpps: DicomStack) -> None:
    acc = await new_order(mpps)
    from radflow.domain.order import EventKind
    from tests.factories import event

    await mpps.service.send_event(acc, event(EventKind.CANCEL, reason="test"))
    uid = generate_uid()
    ans = await asyncio.to_thread(scu(mpps).create, in_progress(accession=acc), uid)
    assert ans.status == 0x0110 and "refused" in ans.comment, ans
    assert mpps.gateway.mpps_store.get(uid) is None  # not kept: the modality keeps it and may retry


async def test_temporal_not_answering_gives_failure_and_nothing_stored(client: Client, tmp_path: Path) -> None:
    # An order whose task queue has no worker: the update can never complete in time.
    queue = f"tq-noworker-{uuid.uuid4().hex[:8]}"
    service = OrderService(client, task_queue=queue, rpc_timeout_s=1.0)
    order = make_order(f"NW{uuid.uuid4().hex[:8].upper()}")
    await service.start_order(order, EventSource.HL7)
    settings = dicom_settings(queue, tmp_path, temporal_rpc_timeout_s=1.0)
    gw = DicomGateway(settings, service)
    await gw.start()
    try:
        uid = generate_uid()
        ans = await asyncio.to_thread(MppsScu(gw.port).create, in_progress(accession=order.accession), uid)
        assert ans.status == 0x0110 and "unavailable" in ans.comment, ans
        assert gw.mpps_store.get(uid) is None
    finally:
        await gw.stop()
        await client.get_workflow_handle(f"order-{order.accession}").terminate("test done")


async def test_n_set_after_gateway_restart_still_validates(mpps: DicomStack) -> None:
    acc = await new_order(mpps)
    uid = generate_uid()
    assert (await asyncio.to_thread(scu(mpps).create, in_progress(accession=acc), uid)).status == 0
    # A second gateway process on the same data dir (as after a restart) knows the step.
    restarted = DicomGateway(mpps.stack.settings, mpps.service)
    await restarted.start()
    try:
        assert (await asyncio.to_thread(MppsScu(restarted.port).set, completed({generate_uid(): 1}), uid)).status == 0
        again = await asyncio.to_thread(MppsScu(restarted.port).set, completed({generate_uid(): 1}), uid)
        assert again.status == 0x0110 and again.error_id == 0xA710
    finally:
        await restarted.stop()
    assert (await mpps.service.get_state(acc)).study.expected_instance_count == 1


async def test_mpps_after_the_images_made_the_order_acquired_is_accepted(mpps: DicomStack) -> None:
    from radflow.domain.order import EventKind
    from tests.factories import event, stable_study

    acc = await new_order(mpps)
    # Images were quicker than the modality's MPPS: the order is already ACQUIRED.
    await mpps.service.send_event(acc, event(EventKind.STUDY_STABLE, study=stable_study(), source=EventSource.DICOM))
    assert (await mpps.service.get_state(acc)).status == OrderStatus.ACQUIRED
    uid = generate_uid()
    assert (await asyncio.to_thread(scu(mpps).create, in_progress(accession=acc), uid)).status == 0x0000
    assert (await asyncio.to_thread(scu(mpps).set, completed({generate_uid(): 2}), uid)).status == 0x0000
    state = await mpps.service.get_state(acc)
    assert state.status == OrderStatus.ACQUIRED
    late = [e for e in state.timeline if e.source == EventSource.DICOM and "late procedure step" in e.summary]
    assert [e.kind for e in late] == ["PROCEDURE_STARTED", "PROCEDURE_COMPLETED"]  # visible to operators
    assert not any(e.exception for e in late)  # expected ordering in the field, not an error
