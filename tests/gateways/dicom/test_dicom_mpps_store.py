"""MPPS instance store: create once, optimistic status update, survives reopening (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from radflow.gateways.dicom.read_models import MppsReadModel, mpps_store
from radflow.infra.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], MppsReadModel]:
    """Opens the store as a process does from its settings; twice = a restart (or a second gateway)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    return lambda: mpps_store(Settings(data_dir=tmp_path, read_model_url=url))


def attrs(status: str) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PatientName = "Test^Synthetic"
    return ds


def test_create_update_reopen(open_store: Callable[[], MppsReadModel]) -> None:
    store = open_store()
    assert store.create("1.2.3", attrs("IN PROGRESS"), ["ACC1"], "CT01")
    assert not store.create("1.2.3", attrs("IN PROGRESS"), ["ACC1"], "CT01")
    assert store.update("1.2.3", attrs("COMPLETED"), expected_status="IN PROGRESS")
    assert not store.update("1.2.3", attrs("DISCONTINUED"), expected_status="IN PROGRESS")  # lost race
    again = open_store().get("1.2.3")
    assert again is not None and again.status == "COMPLETED" and again.accessions == ["ACC1"]
    assert str(again.attributes.PatientName) == "Test^Synthetic" and again.matched


def test_unmatched_listing(open_store: Callable[[], MppsReadModel]) -> None:
    store = open_store()
    store.create("1.1", attrs("IN PROGRESS"), [], "CT01")
    store.create("1.2", attrs("IN PROGRESS"), ["A"], "CT01")
    assert [r.uid for r in store.unmatched()] == ["1.1"]
    assert store.get("9.9") is None
