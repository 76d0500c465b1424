"""The worklist read model: versioned upserts, hiding, index narrowing + exact matching, lookups.

Every test runs on both implementations: the SQLite file and PostgreSQL (a real server)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from radflow.domain.definitions import OrderStatus
from radflow.domain.dicom.matching import compile_query
from radflow.domain.dicom.mwl import entry_from_state
from radflow.domain.order import OrderState
from radflow.gateways.dicom.read_models import WorklistReadModel, worklist_store
from radflow.infra.settings import Settings
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


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> WorklistReadModel:
    """The store a process gets from its settings (read_models.worklist_store)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    return worklist_store(Settings(data_dir=tmp_path, read_model_url=url))


def accessions(store: WorklistReadModel, query, **kw) -> list[str]:
    return [i["AccessionNumber"] for i in store.find(query, **kw)]


def test_upsert_find_and_hide(store: WorklistReadModel) -> None:
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


def test_older_snapshot_never_overwrites_newer(store: WorklistReadModel) -> None:
    store.apply(entry("A1", status=OrderStatus.CANCELLED, updated=T0 + timedelta(seconds=5)))
    assert not store.apply(entry("A1", status=OrderStatus.SCHEDULED, updated=T0))  # a late retry
    assert accessions(store, q()) == []
    assert store.apply(entry("A1", status=OrderStatus.CANCELLED, updated=T0 + timedelta(seconds=5)))  # same version: idempotent


def test_started_rows_are_shown_only_when_asked(store: WorklistReadModel) -> None:
    store.apply(entry("A1", status=OrderStatus.IN_PROGRESS))
    store.apply(entry("A2"))
    assert accessions(store, q()) == ["A2"]
    items = list(store.find(q(), statuses=("SCHEDULED", "STARTED")))
    assert [i["ScheduledProcedureStepSequence"][0]["ScheduledProcedureStepStatus"] for i in items] == ["STARTED", "SCHEDULED"]


def test_lookup_for_mpps_without_accession_includes_hidden_rows(store: WorklistReadModel) -> None:
    e = entry("A7", status=OrderStatus.IN_PROGRESS)
    store.apply(e)
    assert store.lookup_accession(requested_procedure_id="A7") == "A7"
    assert store.lookup_accession(study_uid=e.item["StudyInstanceUID"]) == "A7"
    assert store.lookup_accession(requested_procedure_id="nope") is None
    assert store.lookup_accession() is None


def test_readers_and_writer_in_threads(store: WorklistReadModel) -> None:
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


def test_apply_many_counts_what_it_applied_and_keeps_newer_rows(store: WorklistReadModel) -> None:
    assert store.apply_many(entry(f"M{i}") for i in range(50)) == 50
    stale, newer = entry("M1", updated=T0 - timedelta(seconds=1)), entry("M2", updated=T0 + timedelta(seconds=1),
                                                                         status=OrderStatus.CANCELLED)
    assert store.apply_many([stale, newer]) == 1
    assert store.get("M1").version == entry("M1").version and not store.get("M2").visible
    assert store.apply_many([]) == 0 and store.count() == 49


def test_sync_writes_the_row_and_the_closure_note_together(store: WorklistReadModel) -> None:
    assert store.sync(entry("S1"), "", [])
    assert store.get("S1").visible and store.due_for_purge("9999") == []
    closed = entry("S1", updated=T0 + timedelta(hours=1), status=OrderStatus.CANCELLED)
    assert store.sync(closed, "2030-01-01T09:00:00", ["abc"])
    assert not store.get("S1").visible and store.due_for_purge("9999") == [("S1", ["abc"])]
    assert not store.sync(entry("S1"), "2030-01-01T09:00:00", ["abc"])  # an older snapshot, late: not applied
    assert not store.get("S1").visible
    assert store.sync(entry("S1", updated=T0 + timedelta(hours=2)), "", [])  # reopened: the note goes
    assert store.get("S1").visible and store.due_for_purge("9999") == []
    # Nothing of a sync that fails half-way is kept (one transaction): here the note cannot be encoded.
    with pytest.raises(TypeError):
        store.sync(entry("S2"), "2030-01-01T09:00:00", [object()])  # type: ignore[list-item]
    assert store.get("S2") is None
