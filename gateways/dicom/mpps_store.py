"""MPPS instances the gateway accepted, kept in SQLite so N-SET validates across restarts.

One row per MPPS SOP Instance UID: the merged attribute list (DICOM JSON), its status,
and the orders it was matched to (none = an unscheduled acquisition, also surfaced as
an unmatched exception). The order workflow holds the clinical consequence; this store
only answers "does this step exist, and may it still change?".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydicom.dataset import Dataset

from radflow.gateways.dicom.sqlite_file import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS mpps (
    uid TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    accessions TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mpps_status ON mpps(status);
"""


@dataclass
class MppsRecord:
    uid: str
    status: str
    accessions: list[str]
    calling_ae: str
    attributes: Dataset
    created_at: str
    updated_at: str

    @property
    def matched(self) -> bool:
        return bool(self.accessions)


class MppsStore(SqliteFile):
    SCHEMA = SCHEMA

    def get(self, uid: str) -> MppsRecord | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT uid, status, accessions, calling_ae, attributes, created_at, updated_at FROM mpps WHERE uid = ?", (uid,)
            ).fetchone()
        if row is None:
            return None
        return MppsRecord(row[0], row[1], json.loads(row[2]), row[3], Dataset.from_json(row[4]), row[5], row[6])

    def create(self, uid: str, attributes: Dataset, accessions: list[str], calling_ae: str = "") -> bool:
        """False when the instance already exists (the caller answers Duplicate SOP Instance)."""
        now = _now()
        with self._connect() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO mpps (uid, status, accessions, calling_ae, attributes, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uid, str(attributes.get("PerformedProcedureStepStatus", "")), json.dumps(accessions), calling_ae,
                 attributes.to_json(), now, now),
            )
            return cur.rowcount > 0

    def update(self, uid: str, attributes: Dataset, expected_status: str) -> bool:
        """Store the merged attributes; False if another N-SET changed the status meanwhile."""
        with self._connect() as db:
            cur = db.execute(
                "UPDATE mpps SET status = ?, attributes = ?, updated_at = ? WHERE uid = ? AND status = ?",
                (str(attributes.get("PerformedProcedureStepStatus", "")), attributes.to_json(), _now(), uid, expected_status),
            )
            return cur.rowcount > 0

    def purge_closed(self, closed: Callable[[set[str]], set[str]]) -> int:
        """Drop the attributes (names, MRNs) of instances whose orders all passed retention.

        `closed` answers which accessions did (the worklist store's `closed_before`). The row
        stays (uid, status, accessions): a late N-SET is still answered. Unmatched instances
        are kept whole: they are an exception an operator still has to reconcile."""
        with self._connect() as db:
            rows = db.execute("SELECT uid, accessions FROM mpps WHERE attributes != '{}' AND accessions != '[]'").fetchall()
        wanted = {(uid, tuple(json.loads(accs))) for uid, accs in rows}
        done = closed({a for _, accs in wanted for a in accs}) if wanted else set()
        uids = [uid for uid, accs in wanted if accs and all(a in done for a in accs)]
        if not uids:
            return 0
        with self._connect() as db:
            db.execute("PRAGMA secure_delete = ON")
            return db.execute(f"UPDATE mpps SET attributes = '{{}}' WHERE uid IN ({','.join('?' * len(uids))})", uids).rowcount

    def unmatched(self) -> list[MppsRecord]:
        with self._connect() as db:
            uids = [r[0] for r in db.execute("SELECT uid FROM mpps WHERE accessions = '[]' ORDER BY created_at")]
        return [rec for uid in uids if (rec := self.get(uid)) is not None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
