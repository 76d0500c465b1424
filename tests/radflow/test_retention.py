"""Closed orders' PHI leaves the local stores after the retention period (time injected, never slept).

The stores are the real ones (SQLite worklist/MPPS files, the spool, the attachment directory);
the closure note is written by the real worklist sync (`WorklistSync.apply_state`), and in the
last test by the real workflow on the dev server.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from temporalio.client import Client

from radflow.activities.worklist_sync import WorklistSync
from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus
from radflow.domain.order import Attachment, EventKind, OrderState
from radflow.gateways.dicom.read_models import mpps_store as mpps_store_for
from radflow.gateways.dicom.read_models import worklist_store
from radflow.gateways.dicom.spool import InstanceHeader, Spool
from radflow.gateways.dicom.worklist_store import WorklistStore
from radflow.components import WorkerComponent
from radflow.infra.attachments import AttachmentMissing, attachment_store
from radflow.infra.order_index_store import order_index_store
from radflow.infra.settings import Settings
from radflow.service.retention import RetentionPurge
from radflow.service.wiring import order_service
from radflow.worker import build_worker
from tests.factories import event, make_order, report
from tests.stack import stack_settings
from tests.waiting import eventually

CLOSED = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
NAME = "Zqxjvortname"


def closed_state(accession: str, *, closed_at: datetime | None = CLOSED, sha: str = "") -> OrderState:
    order = make_order(accession, mrn="MRN-" + accession)
    order.patient.name.family = NAME
    rep = report(ReportStatus.FINAL)
    if sha:
        rep.attachments = [Attachment(sha256=sha, content_type="application/pdf", size=10)]
    return OrderState(order=order, status=OrderStatus.DELIVERED if closed_at else OrderStatus.REPORTED, report=rep,
                      created_at=CLOSED - WEEK, updated_at=closed_at or CLOSED, closed_at=closed_at)


def mpps(accession: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = f"{NAME}^Alex"
    ds.PatientID = "MRN-" + accession
    ds.PerformedProcedureStepStatus = "COMPLETED"
    return ds


def spool_study(spool: Spool, accession: str, study_uid: str, *, forwarded: bool) -> None:
    for n in (1, 2):
        uid = f"{study_uid}.{n}"
        spool.store(InstanceHeader(uid, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1", study_uid, study_uid + ".9",
                                   accession=accession, patient_id="MRN-" + accession, patient_name=f"{NAME}^Alex"),
                    b"DICM" + bytes(40 * n))  # the second is over the file threshold: a file on disk
        if forwarded:
            spool.mark_forwarded(uid)


def text_of(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return repr(conn.execute("SELECT * FROM worklist").fetchall() if "worklist" in db.name
                    else conn.execute("SELECT * FROM mpps").fetchall())


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The stores a process gets from its settings: SQLite files, or PostgreSQL (a real server)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    return Settings(data_dir=tmp_path, read_model_url=url)


def test_after_retention_every_local_store_forgets_the_closed_order(settings: Settings, tmp_path: Path) -> None:
    sqlite = not settings.read_model_url.get_secret_value()
    worklist, mpps_store = worklist_store(settings), mpps_store_for(settings)
    spool = Spool(tmp_path / "spool", fsync=False, file_threshold=60)
    documents = attachment_store(settings)
    sha = documents.put(f"%PDF report of {NAME}".encode())
    sync = WorklistSync(worklist)
    sync.apply_state(closed_state("OLD1", sha=sha))
    sync.apply_state(closed_state("OPEN1", closed_at=None))
    for acc in ("OLD1", "OPEN1"):
        mpps_store.create(f"1.9.{len(acc)}.{acc[0]}{ord(acc[-1])}", mpps(acc), [acc])
    mpps_store.create("1.9.7", mpps("NOBODY"), [])  # unmatched: an open exception, kept whole
    spool_study(spool, "OLD1", "1.5.1", forwarded=True)
    spool_study(spool, "OPEN1", "1.5.2", forwarded=True)
    index = order_index_store(settings)
    for acc in ("OLD1", "OPEN1"):
        index.add({f"mrn:MRN-{acc}": [acc], f"placer:PL{acc}^CPOE": [acc]})
    purge = RetentionPurge(WEEK, worklist, attachments=documents, mpps=mpps_store, spool=spool, order_index=index)

    assert not purge.purge_once(now=CLOSED + WEEK - timedelta(seconds=1))  # one second early: nothing
    assert worklist.get("OLD1").item["PatientName"].startswith(NAME)

    result = purge.purge_once(now=CLOSED + WEEK)
    assert (result.orders, result.documents, result.mpps, result.studies, result.index_rows) == (1, 1, 1, 1, 2)
    keys = [k for acc in ("OLD1", "OPEN1") for k in (f"mrn:MRN-{acc}", f"placer:PL{acc}^CPOE")]
    assert index.lookup(keys) == {"mrn:MRN-OPEN1": ["OPEN1"], "placer:PLOPEN1^CPOE": ["OPEN1"]}
    if sqlite:
        with sqlite3.connect(tmp_path / "order_index.db") as conn:
            assert "MRN-OLD1" not in repr(conn.execute("SELECT * FROM order_index").fetchall())
    old, still_open = worklist.get("OLD1"), worklist.get("OPEN1")
    assert old is not None and old.item == {} and old.sps_status == ""  # the row stays as a tombstone
    assert still_open is not None and still_open.item["PatientName"].startswith(NAME)
    if sqlite:
        assert "MRN-OLD1" not in text_of(tmp_path / "worklist.db") and "MRN-OPEN1" in text_of(tmp_path / "worklist.db")
    try:
        documents.get(sha)
        raise AssertionError("the report document is still there")
    except AttachmentMissing:
        pass
    uids = {acc: f"1.9.{len(acc)}.{acc[0]}{ord(acc[-1])}" for acc in ("OLD1", "OPEN1")}
    assert "PatientName" not in mpps_store.get(uids["OLD1"]).attributes
    assert str(mpps_store.get(uids["OPEN1"]).attributes.PatientName).startswith(NAME)
    assert str(mpps_store.get("1.9.7").attributes.PatientName).startswith(NAME)  # unmatched: kept
    assert mpps_store.get(uids["OLD1"]).status == "COMPLETED"  # a late N-SET is still answered
    if sqlite:
        assert "MRN-OLD1" not in text_of(tmp_path / "mpps.db")
    assert spool.study("1.5.1") is None and spool.instance_count("1.5.1") == 0
    assert spool.study("1.5.2") is not None and spool.instance_count("1.5.2") == 2
    assert not list((tmp_path / "spool" / "studies").rglob("1.5.1*"))  # the big instance's file too
    assert not purge.purge_once(now=CLOSED + 2 * WEEK)  # done once
    assert not sync.apply_state(closed_state("OLD1", sha=sha))[0]  # a late retried sync cannot bring it back
    assert worklist.get("OLD1").item == {}
    spool.close()


def test_unforwarded_studies_stay_and_a_reopened_order_is_not_purged(tmp_path: Path) -> None:
    worklist = WorklistStore(tmp_path / "worklist.db")
    spool = Spool(tmp_path / "spool", fsync=False)
    sync = WorklistSync(worklist)
    sync.apply_state(closed_state("KEEP1"))
    spool_study(spool, "KEEP1", "1.6.1", forwarded=False)  # no archive took it: the spool is its only copy
    sync.apply_state(closed_state("REOPEN1"))
    later = closed_state("REOPEN1", closed_at=None)  # a corrected report reopened it
    later.updated_at = CLOSED + timedelta(hours=1)
    sync.apply_state(later)
    result = RetentionPurge(WEEK, worklist, spool=spool).purge_once(now=CLOSED + 2 * WEEK)
    assert (result.orders, result.studies) == (1, 0)
    assert spool.instance_count("1.6.1") == 2
    assert worklist.get("KEEP1").item == {} and worklist.get("REOPEN1").item != {}
    spool.close()


async def test_a_cancelled_order_is_purged_from_the_worklist_after_retention(client: Client, task_queue: str) -> None:
    settings = stack_settings(task_queue, sync_consumers=["worklist"])
    service = order_service(client, settings)
    order = make_order()
    async with build_worker(client, settings):
        await service.start_order(order, EventSource.HL7)
        await service.send_event(order.accession, event(EventKind.CANCEL, reason="duplicate"))
        state = await eventually(lambda: service.get_state(order.accession), lambda s: s.closed_at is not None)
        store = WorklistStore(settings.mwl_db_path())
        # The sync lane runs after the change: its closure note is what the purge goes by.
        await eventually(_async(lambda: store.due_for_purge("9999")), lambda due: bool(due), timeout_s=15)
    retention = timedelta(hours=settings.retention_after_close_hours)
    purge = RetentionPurge.from_settings(settings, store)
    assert not purge.purge_once(now=state.closed_at + retention - timedelta(minutes=1))
    assert purge.purge_once(now=state.closed_at + retention).orders == 1
    row = store.get(order.accession)
    assert row is not None and row.item == {} and "Testperson" not in text_of(settings.mwl_db_path())


async def test_the_worker_process_purges_on_its_own(client: Client, task_queue: str) -> None:
    """What `radflow worker` runs (WorkerComponent): the periodic purge, here with no retention."""
    settings = stack_settings(task_queue, sync_consumers=["worklist"], retention_after_close_hours=0.0,
                              retention_purge_interval_s=0.2)
    service = order_service(client, settings)
    order = make_order()
    component = WorkerComponent(client, settings)
    await component.start()
    try:
        await service.start_order(order, EventSource.HL7)
        await service.send_event(order.accession, event(EventKind.CANCEL, reason="duplicate"))
        store = WorklistStore(settings.mwl_db_path())
        row = await eventually(_async(lambda: store.get(order.accession)), lambda r: r is not None and r.item == {},
                               timeout_s=20)
    finally:
        await component.stop()
    assert row is not None and row.item == {}
    # Its index rows went with it (they hold the MRN); wiring gave the worker's purge the same index.
    placer = f"placer:{order.placer_number}^{order.placer_system}"
    assert service.index_store.lookup([f"mrn:{order.patient.mrn}", placer]) == {}


def _async(fn):
    async def call():
        return fn()
    return call
