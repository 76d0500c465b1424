"""Spool: instance bytes + index in one durable SQLite commit (big instances as files),
dedupe by SOP Instance UID, counts, progress, reopen, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from radflow.gateways.dicom.spool import InstanceHeader, Spool


def header(sop: str, study: str = "1.2.3", series: str = "1.2.3.1", accession: str = "ACC1", modality: str = "CT") -> InstanceHeader:
    return InstanceHeader(sop_instance_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.2", transfer_syntax="1.2.840.10008.1.2.1",
                          study_uid=study, series_uid=series, accession=accession, modality=modality,
                          patient_id="SYN1", calling_ae="CT01")


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_store_commits_bytes_and_index_together(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    assert spool.store(header("1.2.3.1.1"), b"DICM-bytes-1")
    [inst] = spool.instances("1.2.3")
    assert inst.path is None and inst.size == 12 and not inst.forwarded
    assert spool.read("1.2.3.1.1") == b"DICM-bytes-1"
    assert not any((tmp_path / "studies").rglob("*"))  # no file per instance
    rec = spool.study("1.2.3")
    assert rec is not None and rec.instance_count == 1 and rec.accession == "ACC1" and rec.calling_ae == "CT01"
    # Committed when store() returned: another connection (the worker's process) sees both.
    other = sqlite3.connect(tmp_path / "index.sqlite")
    assert other.execute("SELECT b.data FROM instances i JOIN blobs b USING (sop_instance_uid)").fetchall() == [
        (b"DICM-bytes-1",)]
    other.close()


def test_commit_is_synced_unless_fsync_is_off(tmp_path: Path) -> None:
    durable = Spool(tmp_path / "a")
    assert durable._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert durable._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: the WAL is synced at commit
    assert Spool(tmp_path / "b", fsync=False)._db.execute("PRAGMA synchronous").fetchone() == (1,)


def test_resend_of_same_sop_instance_is_kept_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    assert spool.store(header("1.2.3.1.1"), b"first")
    assert not spool.store(header("1.2.3.1.1"), b"second")
    [inst] = spool.instances("1.2.3")
    assert spool.read(inst.sop_instance_uid) == b"first"
    assert spool.study("1.2.3").instance_count == 1


def test_instances_above_the_threshold_are_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock(), file_threshold=8)
    assert spool.store(header("1.2.3.1.1"), b"12345678")
    assert spool.store(header("1.2.3.1.2"), b"123456789")
    small, big = spool.instances("1.2.3")
    assert small.path is None and spool.read(small.sop_instance_uid) == b"12345678"
    assert big.path == tmp_path / "studies" / "1.2.3" / "1.2.3.1.2.dcm" and big.path.read_bytes() == b"123456789"
    assert spool.read(big.sop_instance_uid) == b"123456789"
    spool.close()
    again = Spool(tmp_path)  # the default threshold reads both kinds the same way
    assert [again.read(i.sop_instance_uid) for i in again.instances("1.2.3")] == [b"12345678", b"123456789"]
    with pytest.raises(KeyError):
        again.read("9.9.9")


def test_full_database_stores_nothing_and_raises(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock())
    assert spool.store(header("1.2.3.1.1"), b"x")
    pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
    spool._db.execute(f"PRAGMA max_page_count = {pages}")  # as if the disk were full
    with pytest.raises(sqlite3.OperationalError, match="full"):
        spool.store(header("1.2.3.1.2"), os.urandom(64 * 1024))
    assert [i.sop_instance_uid for i in spool.instances("1.2.3")] == ["1.2.3.1.1"]
    assert spool.study("1.2.3").instance_count == 1
    spool._db.execute("PRAGMA max_page_count = 1073741823")
    assert spool.store(header("1.2.3.1.2"), b"y")  # the resend after space was freed
    assert spool.study("1.2.3").instance_count == 2


_WRITER = """
import sys
from radflow.gateways.dicom.spool import InstanceHeader, Spool
spool = Spool(sys.argv[1])
for i in range(10_000):
    sop = f"1.2.3.9.{i}"
    spool.store(InstanceHeader(sop, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1", "1.2.3", "1.2.3.9"),
                sop.encode() * 1000)
    print(sop, flush=True)  # the moment a C-STORE would be answered success
"""


def test_kill_9_after_success_loses_nothing(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[3])
    acknowledged = [proc.stdout.readline().strip() for _ in range(50)]  # type: ignore[union-attr]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    spool = Spool(tmp_path)
    spooled = {i.sop_instance_uid for i in spool.instances("1.2.3")}
    assert set(acknowledged) <= spooled
    for sop in acknowledged:
        assert spool.read(sop) == sop.encode() * 1000
    assert spool.study("1.2.3").instance_count == len(spooled)  # counters match what is stored


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
    spool = Spool(tmp_path, clock=Clock(), file_threshold=0)
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


def test_big_instance_fsyncs_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    monkeypatch.setattr(os, "fdatasync", spy)
    spool = Spool(tmp_path, clock=Clock(), file_threshold=0)
    spool.store(header("1.2.3.1.1"), b"x")
    study_dir = (tmp_path / "studies" / "1.2.3").resolve()
    assert synced == [str(tmp_path.resolve() / "studies"), str(study_dir / "1.2.3.1.1.dcm"), str(study_dir)]
    synced.clear()
    spool.store(header("1.2.3.1.2"), b"y")  # known study directory: file, then its directory entry
    assert synced == [str(study_dir / "1.2.3.1.2.dcm"), str(study_dir)]


def test_orphan_file_of_a_crash_is_replaced(tmp_path: Path) -> None:
    spool = Spool(tmp_path, clock=Clock(), file_threshold=0)
    orphan = tmp_path / "studies" / "1.2.3" / "1.2.3.1.1.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half a fi")  # written, never indexed, never acknowledged
    assert spool.store(header("1.2.3.1.1"), b"the whole file")
    assert orphan.read_bytes() == b"the whole file"
    assert not list(orphan.parent.glob("*.part"))


@pytest.mark.parametrize("file_threshold", [0, 1024])
def test_same_instance_on_two_associations_at_once_is_kept_once(tmp_path: Path, file_threshold: int) -> None:
    import threading

    spool = Spool(tmp_path, clock=Clock(), file_threshold=file_threshold)
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
    assert spool.read(inst.sop_instance_uid) == b"same bytes" and spool.study("1.2.3").instance_count == 1
    assert not list((tmp_path / "studies").rglob("*.part"))


@pytest.mark.parametrize("file_threshold", [0, 1024])
def test_corrected_resend_under_another_study_keeps_the_first(tmp_path: Path, file_threshold: int) -> None:
    spool = Spool(tmp_path, clock=Clock(), file_threshold=file_threshold)
    assert spool.store(header("1.2.3.1.1"), b"first")
    assert not spool.store(header("1.2.3.1.1", study="4.5.6"), b"second")
    assert not (tmp_path / "studies" / "4.5.6" / "1.2.3.1.1.dcm").exists()
    assert [spool.read(i.sop_instance_uid) for i in spool.instances("1.2.3")] == [b"first"]
    assert spool.instances("4.5.6") == [] and spool.study("4.5.6") is None
