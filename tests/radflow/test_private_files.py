"""Stores holding names and MRNs are created owner-only (they were 0644 / 0755)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from radflow.gateways.dicom.mpps_store import MppsStore
from radflow.gateways.dicom.spool import Spool
from radflow.gateways.dicom.worklist_store import WorklistStore
from radflow.infra.attachments import FileAttachmentStore
from radflow.infra.audit_trail import AuditTrail


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_read_models_spool_attachments_and_audit_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a typical login umask: what made the stores 0644
    try:
        data = tmp_path / "data"
        WorklistStore(data / "worklist.db")
        MppsStore(data / "mpps.db")
        spool = Spool(data / "spool", fsync=False, file_threshold=10)
        spool.close()
        sha = FileAttachmentStore(data / "attachments", fsync=False).put(b"%PDF-1.4 report of DOE^JANE")
        reader = sqlite3.connect(data / "worklist.db")  # while open, SQLite keeps its -wal/-shm files
        reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
        AuditTrail(data / "audit" / "audit.jsonl").record(who=None, action="GET /orders/A", outcome=401, source="127.0.0.1")
    finally:
        os.umask(old)
    files = [data / "worklist.db", data / "worklist.db-wal", data / "worklist.db-shm", data / "mpps.db", data / "spool" / "index.sqlite",
             data / "attachments" / sha[:2] / sha, data / "audit" / "audit.jsonl"]
    dirs = [data, data / "spool", data / "spool" / "studies", data / "attachments" / sha[:2], data / "audit"]
    assert {str(f): oct(mode(f)) for f in files} == {str(f): oct(0o600) for f in files}
    assert {str(d): oct(mode(d)) for d in dirs} == {str(d): oct(0o700) for d in dirs}
    reader.close()


def test_an_existing_world_readable_store_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "worklist.db"
    WorklistStore(db)
    os.chmod(db, 0o644)
    WorklistStore(db)  # next start of the gateway or worker
    assert mode(db) == 0o600


def test_a_shared_parent_directory_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    WorklistStore(shared / "worklist.db")
    assert mode(shared) == 0o755 and mode(shared / "worklist.db") == 0o600
