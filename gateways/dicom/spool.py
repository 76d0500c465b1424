"""The storage spool: every received instance and what it is, in one SQLite database.

Durability contract (what lets the Storage SCP answer success): `store()` returns only after
ONE SQLite transaction holding the instance's bytes (table `blobs`) and its index rows
(`instances`, `studies`) was committed in WAL mode with synchronous=FULL, i.e. after the
WAL was fdatasync'd. A crash before that commit leaves nothing of the instance (the sender
got no success and resends); after it, the instance is complete and readable by any process
that opens the spool. One sync per instance instead of three (file, directory, index) is
what makes durable ingest keep up with a plain SCP (docs/dicom-storage.md has the figures).

Instances larger than `file_threshold` (default 64 MiB: big multi-frame objects) are kept as
files, `studies/<StudyUID>/<SOPUID>.dcm`: the file is fdatasync'd and its directory fsync'd
before the index row is committed, so a crash leaves at most an orphan file that the resend
replaces. Rows with a non-empty `path` are files; spools written before the blobs table
existed are all files and stay readable.

The gateway (writer of instances) and the worker's archive activity (reads instances, marks
them forwarded) open the same database from different processes: same host, same `spool_dir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from radflow.domain.order import SeriesInfo, StudyInfo
from radflow.infra.private_files import private_dir, private_file
from radflow.infra.settings import Settings
from radflow.infra.sqlite_tx import ImmediateTransaction

_UID = re.compile(r"^[0-9.]{1,64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    sop_class_uid    TEXT NOT NULL,
    transfer_syntax  TEXT NOT NULL,
    study_uid        TEXT NOT NULL,
    series_uid       TEXT NOT NULL,
    modality         TEXT NOT NULL DEFAULT '',
    accession        TEXT NOT NULL DEFAULT '',
    path             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    received_at      REAL NOT NULL,
    forwarded_at     REAL
);
CREATE INDEX IF NOT EXISTS instances_by_study ON instances (study_uid, series_uid);
CREATE TABLE IF NOT EXISTS blobs (
    sop_instance_uid TEXT PRIMARY KEY,
    data             BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS studies (
    study_uid          TEXT PRIMARY KEY,
    accession          TEXT NOT NULL DEFAULT '',
    patient_id         TEXT NOT NULL DEFAULT '',
    patient_issuer     TEXT NOT NULL DEFAULT '',
    patient_name       TEXT NOT NULL DEFAULT '',
    study_date         TEXT NOT NULL DEFAULT '',
    calling_ae         TEXT NOT NULL DEFAULT '',
    instance_count     INTEGER NOT NULL DEFAULT 0,
    first_received     REAL NOT NULL,
    last_received      REAL NOT NULL,
    arriving_sent      INTEGER NOT NULL DEFAULT 0,
    stable_sent_count  INTEGER NOT NULL DEFAULT 0,
    linked_accession   TEXT NOT NULL DEFAULT '',
    unmatched          INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class InstanceHeader:
    """The few attributes the gateway reads from each instance (cheaply, not the pixels)."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    study_uid: str
    series_uid: str
    accession: str = ""
    modality: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    calling_ae: str = ""
    patient_issuer: str = ""  # IssuerOfPatientID (0010,0021)


@dataclass(frozen=True)
class SpooledInstance:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    study_uid: str
    series_uid: str
    path: Path | None  # a file for instances above the spool's file_threshold, else None (bytes in `blobs`)
    forwarded: bool
    size: int = 0


@dataclass(frozen=True)
class StudyRecord:
    """A study's progress as the aggregator last saved it."""

    study_uid: str
    accession: str
    patient_id: str
    patient_name: str
    study_date: str
    calling_ae: str
    instance_count: int
    first_received: float
    last_received: float
    arriving_sent: bool
    stable_sent_count: int
    linked_accession: str
    unmatched: bool
    patient_issuer: str = ""

    @property
    def target_accession(self) -> str:
        """Where the study's events go: the operator's link wins over the dataset's accession."""
        return self.linked_accession or self.accession


def spool_dir(settings: Settings) -> Path:
    return settings.dicom_spool_dir or settings.data_dir / "spool"


def _name(uid: str) -> str:
    # UIDs are digits and dots; anything else (a broken sender) must not become a path.
    return uid if _UID.match(uid) else "x" + hashlib.sha256(uid.encode()).hexdigest()[:40]


FILE_THRESHOLD = 64 * 1024 * 1024
# Checkpoints run in the committing thread every WAL_AUTOCHECKPOINT pages (SQLite's default,
# ~120 instances of 33 KiB): a ~5 ms pause that keeps the WAL small and its file reused in
# place, which keeps each commit's fdatasync cheap (no file growth to journal). A background
# checkpointer measured slower per instance. See docs/dicom-storage.md.
WAL_AUTOCHECKPOINT = 1000
# A burst of big blobs, or a reader pinning an old snapshot, can grow the WAL; once it is
# checkpointed it is truncated back to this.
WAL_SIZE_LIMIT = 64 * 1024 * 1024


class Spool:
    def __init__(self, root: Path, *, fsync: bool = True, clock=time.time, file_threshold: int = FILE_THRESHOLD) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.clock = clock
        self.file_threshold = file_threshold
        private_dir(self.root / "studies")  # instances hold names and MRNs: owner-only
        private_file(self.root / "index.sqlite")
        self._lock = threading.Lock()
        self._known_dirs: set[str] = set()
        self._db = sqlite3.connect(self.root / "index.sqlite", timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL syncs the WAL at every commit: the commit is the instance's durability.
        # fsync=False (benchmarks only) keeps commits atomic but unsynced.
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        with self._lock:
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(studies)")}
            if "patient_issuer" not in columns:  # a spool from before the column (study identity, issue 7.8)
                self._db.execute("ALTER TABLE studies ADD COLUMN patient_issuer TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ receive
    def store(self, header: InstanceHeader, encoded: bytes) -> bool:
        """Make the instance durable. Returns False for a SOP Instance UID already spooled
        (a resend): the first copy is kept, like an archive answering "already stored"."""
        if len(encoded) > self.file_threshold:
            return self._store_file(header, encoded)
        with self._lock, ImmediateTransaction(self._db) as cur:
            new = self._index(cur, header, "", len(encoded))
            if new:
                cur.execute("INSERT OR REPLACE INTO blobs (sop_instance_uid, data) VALUES (?, ?)",
                            (header.sop_instance_uid, encoded))
        return new

    def _store_file(self, header: InstanceHeader, encoded: bytes) -> bool:
        rel = Path("studies") / _name(header.study_uid) / f"{_name(header.sop_instance_uid)}.dcm"
        if not self._write_durably(self.root / rel, encoded, header.sop_instance_uid):
            return False
        with self._lock, ImmediateTransaction(self._db) as cur:
            new = self._index(cur, header, str(rel), len(encoded))
            # Indexed meanwhile: by a twin on another association (same file, keep it)
            # or under another study (a corrected resend: the first copy wins).
            row = None if new else cur.execute("SELECT path FROM instances WHERE sop_instance_uid = ?",
                                               (header.sop_instance_uid,)).fetchone()
        if row is not None and row[0] != str(rel):
            (self.root / rel).unlink(missing_ok=True)
        return new

    def _index(self, cur: sqlite3.Cursor, header: InstanceHeader, rel: str, size: int) -> bool:
        """Index row + study counters, inside the caller's transaction. False: already spooled."""
        now = self.clock()
        cur.execute(
            "INSERT OR IGNORE INTO instances (sop_instance_uid, sop_class_uid, transfer_syntax, study_uid,"
            " series_uid, modality, accession, path, size, received_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (header.sop_instance_uid, header.sop_class_uid, header.transfer_syntax, header.study_uid,
             header.series_uid, header.modality, header.accession, rel, size, now),
        )
        if cur.rowcount != 1:
            return False
        cur.execute(
            "INSERT INTO studies (study_uid, accession, patient_id, patient_name, study_date, calling_ae,"
            " instance_count, first_received, last_received, patient_issuer) VALUES (?,?,?,?,?,?,1,?,?,?)"
            " ON CONFLICT(study_uid) DO UPDATE SET instance_count = instance_count + 1,"
            " last_received = excluded.last_received",
            (header.study_uid, header.accession, header.patient_id, header.patient_name,
             header.study_date, header.calling_ae, now, now, header.patient_issuer),
        )
        return True

    def _write_durably(self, path: Path, data: bytes, sop_instance_uid: str) -> bool:
        """False (nothing written) when the instance is already spooled."""
        directory = path.parent
        if str(directory) not in self._known_dirs:
            created = not directory.exists()
            private_dir(directory)
            if created and self.fsync:
                _fsync_dir(directory.parent)
            self._known_dirs.add(str(directory))
        try:
            # Straight to the final name: on ext4 the file's fsync then commits its directory
            # entry in the same journal transaction, so the directory fsync below is nearly
            # free (a rename afterwards would cost a second journal commit per instance).
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if self.contains(sop_instance_uid):
                return False  # a resend: the first copy stays, like an archive's "already stored"
            # An orphan of a crash, or the same instance arriving on two associations at once:
            # written aside and renamed, so a reader never sees half a file.
            part = path.with_name(f"{path.name}.{threading.get_ident()}.part")
            self._write_fd(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), data)
            os.replace(part, path)
        else:
            self._write_fd(fd, data)
        if self.fsync:
            _fsync_dir(directory)
        return True

    def _write_fd(self, fd: int, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fdatasync(fd)  # data + the size needed to read it back; mtime may lag
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ read
    def contains(self, sop_instance_uid: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)).fetchone()
        return row is not None

    def study_info(self, study_uid: str) -> StudyInfo:
        """Counts per series as spooled now (the workflow's StudyInfo payload)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT series_uid, MIN(modality), COUNT(*) FROM instances WHERE study_uid = ?"
                " GROUP BY series_uid ORDER BY MIN(received_at)",
                (study_uid,),
            ).fetchall()
        series = [SeriesInfo(series_instance_uid=uid, modality=mod, instance_count=n) for uid, mod, n in rows]
        modalities = sorted({s.modality for s in series if s.modality})
        return StudyInfo(
            study_instance_uid=study_uid,
            series_count=len(series),
            instance_count=sum(s.instance_count for s in series),
            modality="\\".join(modalities),
            series=series,
        )

    def instances(self, study_uid: str, *, unforwarded_only: bool = False) -> list[SpooledInstance]:
        sql = ("SELECT sop_instance_uid, sop_class_uid, transfer_syntax, study_uid, series_uid, path, forwarded_at, size"
               " FROM instances WHERE study_uid = ?")
        if unforwarded_only:
            sql += " AND forwarded_at IS NULL"
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY received_at", (study_uid,)).fetchall()
        return [SpooledInstance(r[0], r[1], r[2], r[3], r[4], self.root / r[5] if r[5] else None, r[6] is not None, r[7])
                for r in rows]

    def read(self, sop_instance_uid: str) -> bytes:
        """The instance as spooled (a Part 10 file's bytes). KeyError if it is not in the spool."""
        with self._lock:
            row = self._db.execute(
                "SELECT i.path, b.data FROM instances i LEFT JOIN blobs b USING (sop_instance_uid)"
                " WHERE i.sop_instance_uid = ?", (sop_instance_uid,)).fetchone()
        if row is None:
            raise KeyError(sop_instance_uid)
        path, data = row
        if path:
            return (self.root / path).read_bytes()
        if data is None:
            raise KeyError(f"{sop_instance_uid}: indexed without its bytes")
        return data

    def instance_count(self, study_uid: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM instances WHERE study_uid = ?", (study_uid,)).fetchone()
        return int(row[0])

    def study(self, study_uid: str) -> StudyRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_STUDY_COLUMNS} FROM studies WHERE study_uid = ?", (study_uid,)).fetchone()
        return _study(row) if row else None

    def pending_studies(self) -> list[StudyRecord]:
        """Studies whose last news has not reached Temporal yet (the aggregator's restart point)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_STUDY_COLUMNS} FROM studies WHERE arriving_sent = 0 OR stable_sent_count != instance_count"
                " ORDER BY first_received"
            ).fetchall()
        return [_study(r) for r in rows]

    # ------------------------------------------------------------------ retention
    def purge_closed(self, closed: Callable[[set[str]], set[str]]) -> int:
        """Remove studies whose order passed retention (`closed` answers which accessions did)
        once every instance reached the archive; without an archive the spool is the image
        store and nothing is removed. Returns the number of studies removed."""
        with self._lock:
            rows = self._db.execute("SELECT study_uid, accession, linked_accession FROM studies").fetchall()
        keyed = [(uid, linked or acc) for uid, acc, linked in rows if linked or acc]
        done = closed({key for _, key in keyed}) if keyed else set()
        removed = 0
        for study_uid, key in keyed:
            if key not in done:
                continue
            with self._lock:
                self._db.execute("PRAGMA secure_delete = ON")  # freed pages zeroed: no images left in the file
                with ImmediateTransaction(self._db) as cur:
                    if cur.execute("SELECT 1 FROM instances WHERE study_uid = ? AND forwarded_at IS NULL LIMIT 1",
                                   (study_uid,)).fetchone():
                        continue
                    paths = [r[0] for r in cur.execute("SELECT path FROM instances WHERE study_uid = ? AND path != ''",
                                                       (study_uid,))]
                    cur.execute("DELETE FROM blobs WHERE sop_instance_uid IN "
                                "(SELECT sop_instance_uid FROM instances WHERE study_uid = ?)", (study_uid,))
                    cur.execute("DELETE FROM instances WHERE study_uid = ?", (study_uid,))
                    cur.execute("DELETE FROM studies WHERE study_uid = ?", (study_uid,))
            for rel in paths:
                (self.root / rel).unlink(missing_ok=True)
            for folder in {(self.root / rel).parent for rel in paths}:
                with contextlib.suppress(OSError):  # not empty (a resend meanwhile): left as is
                    folder.rmdir()
            removed += 1
        return removed

    # ------------------------------------------------------------------ progress
    def mark_forwarded(self, sop_instance_uid: str) -> None:
        with self._lock:
            self._db.execute("UPDATE instances SET forwarded_at = ? WHERE sop_instance_uid = ?",
                             (self.clock(), sop_instance_uid))

    def unmark_forwarded(self, sop_instance_uids: list[str]) -> None:
        """The archive lost (or silently dropped) these: send them again on the next attempt."""
        with self._lock:
            self._db.executemany("UPDATE instances SET forwarded_at = NULL WHERE sop_instance_uid = ?",
                                 [(uid,) for uid in sop_instance_uids])

    def save_progress(self, study_uid: str, *, arriving_sent: bool | None = None, stable_sent_count: int | None = None,
                      linked_accession: str | None = None, unmatched: bool | None = None) -> None:
        values = {
            "arriving_sent": None if arriving_sent is None else int(arriving_sent),
            "stable_sent_count": stable_sent_count,
            "linked_accession": linked_accession,
            "unmatched": None if unmatched is None else int(unmatched),
        }
        sets = {k: v for k, v in values.items() if v is not None}
        if not sets:
            return
        assignments = ", ".join(f"{k} = ?" for k in sets)
        with self._lock:
            self._db.execute(f"UPDATE studies SET {assignments} WHERE study_uid = ?", (*sets.values(), study_uid))


_STUDY_COLUMNS = ("study_uid, accession, patient_id, patient_name, study_date, calling_ae, instance_count,"
                  " first_received, last_received, arriving_sent, stable_sent_count, linked_accession, unmatched, patient_issuer")


def _study(row: tuple) -> StudyRecord:
    return StudyRecord(row[0], row[1], row[2], row[3], row[4], row[5], int(row[6]), float(row[7]), float(row[8]),
                       bool(row[9]), int(row[10]), row[11], bool(row[12]), row[13])


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
