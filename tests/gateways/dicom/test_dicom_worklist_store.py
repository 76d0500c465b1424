"""The worklist read model: versioned upserts, hiding, index narrowing + exact matching, lookups."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydicom.dataset import Dataset

from domain.definitions import OrderStatus
from domain.dicom.matching import compile_query
from domain.dicom.mwl import entry_from_state
from domain.order import OrderState
from gateways.dicom.worklist_store import WorklistStore
from tests.factories import make_order

T0 = datetime(2030, 1, 1, 8, tzinfo=UTC)


def entry(acc: str, station: str = "CT01", status=OrderStatus.SCHEDULED, updated: datetime = T0, day: int = 1, mrn="MRN1"):
    order = make_order(acc, mrn=mrn, station=station, start=datetime(2030, 1, day, 9, tzinfo=UTC))
    return entry_from_state(OrderState(order=order, status=status, created_at=T0, updated_at=updated))


def q(station: str = "", date: str = "", **top: str):
    ds = Dataset()
    for k, v in top.items():
        setattr(ds, k, v)
    ds.AccessionNumber = top.get("AccessionNumber", "")
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    sps.ScheduledProcedureStepStartDate = date
    ds.ScheduledProcedureStepSequence = [sps]
    return compile_query(ds)


def accessions(store: WorklistStore, query, **kw) -> list[str]:
    return [i["AccessionNumber"] for i in store.find(query, **kw)]


def test_upsert_find_and_hide(tmp_path: Path) -> None:
    store = WorklistStore(tmp_path / "wl.db")
    assert store.apply(entry("A1")) and store.apply(entry("A2", station="MR01")) and store.apply(entry("A3", day=3))
    assert accessions(store, q()) == ["A1", "A2", "A3"]
    assert accessions(store, q("CT01")) == ["A1", "A3"]
    assert accessions(store, q(date="20300102-")) == ["A3"]
    assert accessions(store, q("CT01", PatientID="MRN1")) == ["A1", "A3"]
    assert accessions(store, q(AccessionNumber="A2")) == ["A2"]
    assert accessions(store, q(), limit=2) == ["A1", "A2"]
    assert store.apply(entry("A1", status=OrderStatus.CANCELLED, updated=T0 + timedelta(seconds=1)))
    assert accessions(store, q("CT01")) == ["A3"]
    assert store.count() == 2 and store.count(visible_only=False) == 3


def test_older_snapshot_never_overwrites_newer(tmp_path: Path) -> None:
    store = WorklistStore(tmp_path / "wl.db")
    store.apply(entry("A1", status=OrderStatus.CANCELLED, updated=T0 + timedelta(seconds=5)))
    assert not store.apply(entry("A1", status=OrderStatus.SCHEDULED, updated=T0))  # a late retry
    assert accessions(store, q()) == []
    assert store.apply(entry("A1", status=OrderStatus.CANCELLED, updated=T0 + timedelta(seconds=5)))  # same version: idempotent


def test_started_rows_are_shown_only_when_asked(tmp_path: Path) -> None:
    store = WorklistStore(tmp_path / "wl.db")
    store.apply(entry("A1", status=OrderStatus.IN_PROGRESS))
    store.apply(entry("A2"))
    assert accessions(store, q()) == ["A2"]
    items = list(store.find(q(), statuses=("SCHEDULED", "STARTED")))
    assert [i["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStatus"] for i in items] == ["STARTED", "SCHEDULED"]


def test_lookup_for_mpps_without_accession_includes_hidden_rows(tmp_path: Path) -> None:
    store = WorklistStore(tmp_path / "wl.db")
    e = entry("A7", status=OrderStatus.IN_PROGRESS)
    store.apply(e)
    assert store.lookup_accession(requested_procedure_id="A7") == "A7"
    assert store.lookup_accession(study_uid=e.item["StudyInstanceUID"]) == "A7"
    assert store.lookup_accession(requested_procedure_id="nope") is None
    assert store.lookup_accession() is None


def test_readers_and_writer_in_threads(tmp_path: Path) -> None:
    store = WorklistStore(tmp_path / "wl.db")
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store.apply_many(entry(f"W{i:04d}") for i in range(300))
        except BaseException as err:  # noqa: BLE001 - surfaced below
            errors.append(err)

    def read() -> None:
        try:
            for _ in range(30):
                list(store.find(q("CT01")))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and store.count() == 300
