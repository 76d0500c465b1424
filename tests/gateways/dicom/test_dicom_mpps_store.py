"""MPPS instance store: create once, optimistic status update, survives reopening."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from gateways.dicom.mpps_store import MppsStore


def attrs(status: str) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PatientName = "Test^Synthetic"
    return ds


def test_create_update_reopen(tmp_path: Path) -> None:
    store = MppsStore(tmp_path / "mpps.db")
    assert store.create("1.2.3", attrs("IN PROGRESS"), ["ACC1"], "CT01")
    assert not store.create("1.2.3", attrs("IN PROGRESS"), ["ACC1"], "CT01")
    assert store.update("1.2.3", attrs("COMPLETED"), expected_status="IN PROGRESS")
    assert not store.update("1.2.3", attrs("DISCONTINUED"), expected_status="IN PROGRESS")  # lost race
    again = MppsStore(tmp_path / "mpps.db").get("1.2.3")
    assert again is not None and again.status == "COMPLETED" and again.accessions == ["ACC1"]
    assert str(again.attributes.PatientName) == "Test^Synthetic" and again.matched


def test_unmatched_listing(tmp_path: Path) -> None:
    store = MppsStore(tmp_path / "mpps.db")
    store.create("1.1", attrs("IN PROGRESS"), [], "CT01")
    store.create("1.2", attrs("IN PROGRESS"), ["A"], "CT01")
    assert [r.uid for r in store.unmatched()] == ["1.1"]
    assert store.get("9.9") is None
