"""Spool: durable files + SQLite index, dedupe by SOP Instance UID, counts, progress, reopen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateways.dicom.spool import InstanceHeader, Spool


def header(sop: str, study: str = "1.2.3", series: str = "1.2.3.1", accession: str = "ACC1", modality: str = "CT") -> InstanceHeader:
    return InstanceHeader(sop_instance_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.2", transfer_syntax="1.2.840.10008.1.2.1",
                          study_uid=study, series_uid=series, accession=accession, modality=modality,
                          patient_id="SYN1", calling_ae="CT01")


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_store_writes_file_and_index(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    assert spool.store(header("1.2.3.1.1"), b"DICM-bytes-1")
    [inst] = spool.instances("1.2.3")
    assert inst.path.read_bytes() == b"DICM-bytes-1"
    assert inst.path.is_relative_to(tmp_path / "studies") and not inst.forwarded
    rec = spool.study("1.2.3")
    assert rec is not None and rec.instance_count == 1 and rec.accession == "ACC1" and rec.calling_ae == "CT01"


def test_resend_of_same_sop_instance_is_kept_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    assert spool.store(header("1.2.3.1.1"), b"first")
    assert not spool.store(header("1.2.3.1.1"), b"second")
    [inst] = spool.instances("1.2.3")
    assert inst.path.read_bytes() == b"first"
    assert spool.study("1.2.3").instance_count == 1


def test_study_info_counts_series_and_modalities(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    for i in range(3):
        spool.store(header(f"1.2.3.1.{i}", series="1.2.3.1"), b"x")
    for i in range(2):
        spool.store(header(f"1.2.3.2.{i}", series="1.2.3.2", modality="SR"), b"x")
    spool.store(header("9.9.1", study="9.9", series="9.9.9"), b"x")
    info = spool.study_info("1.2.3")
    assert (info.series_count, info.instance_count) == (2, 5)
    assert {s.series_instance_uid: s.instance_count for s in info.series} == {"1.2.3.1": 3, "1.2.3.2": 2}
    assert info.modality == "CT\\SR"
    assert spool.instance_count("9.9") == 1


def test_unsafe_uids_never_become_paths(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    spool.store(header("../../etc/passwd", study="../evil"), b"x")
    [inst] = spool.instances("../evil")
    assert inst.path.resolve().is_relative_to((tmp_path / "studies").resolve())
    assert ".." not in inst.path.relative_to(tmp_path).parts


def test_forwarded_marks_and_progress_survive_reopen(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path, clock=clock)
    for i in range(4):
        spool.store(header(f"1.2.3.1.{i}"), b"x")
    spool.mark_forwarded("1.2.3.1.0")
    spool.save_progress("1.2.3", arriving_sent=True, stable_sent_count=4)
    spool.store(header("5.5.1", study="5.5"), b"x")  # nothing told yet
    spool.close()

    again = Spool(tmp_path, clock=clock)
    todo = again.instances("1.2.3", unforwarded_only=True)
    assert [i.sop_instance_uid for i in todo] == ["1.2.3.1.1", "1.2.3.1.2", "1.2.3.1.3"]
    assert [s.study_uid for s in again.pending_studies()] == ["5.5"]
    again.store(header("1.2.3.1.9"), b"x")  # a late instance makes the first study pending again
    pending = {s.study_uid: s for s in again.pending_studies()}
    assert set(pending) == {"1.2.3", "5.5"} and pending["1.2.3"].arriving_sent and pending["1.2.3"].instance_count == 5


def test_linked_accession_wins_over_the_datasets(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    spool.store(header("1.2.3.1.1", accession="WRONG"), b"x")
    spool.save_progress("1.2.3", linked_accession="RIGHT", unmatched=True)
    rec = spool.study("1.2.3")
    assert rec.target_accession == "RIGHT" and rec.unmatched


def test_store_fsyncs_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    monkeypatch.setattr(os, "fdatasync", spy)
    spool = Spool(tmp_path, clock=Clock())
    spool.store(header("1.2.3.1.1"), b"x")
    study_dir = (tmp_path / "studies" / "1.2.3").resolve()
    assert synced == [str(tmp_path.resolve() / "studies"), str(study_dir / "1.2.3.1.1.dcm"), str(study_dir)]
    synced.clear()
    spool.store(header("1.2.3.1.2"), b"y")  # known study directory: file, then its directory entry
    assert synced == [str(study_dir / "1.2.3.1.2.dcm"), str(study_dir)]


def test_orphan_file_of_a_crash_is_replaced(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    orphan = tmp_path / "studies" / "1.2.3" / "1.2.3.1.1.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half a fi")  # written, never indexed, never acknowledged
    assert spool.store(header("1.2.3.1.1"), b"the whole file")
    assert orphan.read_bytes() == b"the whole file"
    assert not list(orphan.parent.glob("*.part"))


def test_same_instance_on_two_associations_at_once_is_kept_once(tmp_path: Path) -> None:
    import threading

    spool = Spool(tmp_path, clock=Clock())
    go = threading.Barrier(8)
    results: list[bool] = []

    def deliver() -> None:
        go.wait()
        results.append(spool.store(header("1.2.3.1.1"), b"same bytes"))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    [inst] = spool.instances("1.2.3")
    assert inst.path.read_bytes() == b"same bytes" and spool.study("1.2.3").instance_count == 1


def test_corrected_resend_under_another_study_keeps_the_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    assert spool.store(header("1.2.3.1.1"), b"first")
    assert not spool.store(header("1.2.3.1.1", study="4.5.6"), b"second")
    assert not (tmp_path / "studies" / "4.5.6" / "1.2.3.1.1.dcm").exists()
    assert [i.path.read_bytes() for i in spool.instances("1.2.3")] == [b"first"]
