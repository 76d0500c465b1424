"""MPPS instances on PostgreSQL: an N-CREATE on one gateway is known to an N-SET on another.

Same contract as the SQLite store (mpps_store.py): create is insert-if-absent (a duplicate
SOP Instance is refused by the caller), update is compare-and-set on the status, so two
gateways racing on one instance cannot both move it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from psycopg_pool import ConnectionPool
from pydicom.dataset import Dataset

from radflow.gateways.dicom.mpps_store import MppsRecord, _now

_COLUMNS = "uid, status, accessions, calling_ae, attributes, created_at, updated_at"


class PgMppsStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def get(self, uid: str) -> MppsRecord | None:
        with self.pool.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM mpps WHERE uid = %s", (uid,)).fetchone()
        if row is None:
            return None
        return MppsRecord(row[0], row[1], json.loads(row[2]), row[3], Dataset.from_json(row[4]), row[5], row[6])

    def create(self, uid: str, attributes: Dataset, accessions: list[str], calling_ae: str = "") -> bool:
        now = _now()
        with self.pool.connection() as conn:
            cur = conn.execute(
                f"INSERT INTO mpps ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (uid) DO NOTHING",
                (uid, str(attributes.get("PerformedProcedureStepStatus", "")), json.dumps(accessions), calling_ae,
                 attributes.to_json(), now, now),
            )
            return cur.rowcount > 0

    def update(self, uid: str, attributes: Dataset, expected_status: str) -> bool:
        with self.pool.connection() as conn:
            cur = conn.execute(
                "UPDATE mpps SET status = %s, attributes = %s, updated_at = %s WHERE uid = %s AND status = %s",
                (str(attributes.get("PerformedProcedureStepStatus", "")), attributes.to_json(), _now(), uid, expected_status),
            )
            return cur.rowcount > 0

    def unmatched(self) -> list[MppsRecord]:
        with self.pool.connection() as conn:
            uids = [r[0] for r in conn.execute("SELECT uid FROM mpps WHERE accessions = '[]' ORDER BY created_at")]
        return [rec for uid in uids if (rec := self.get(uid)) is not None]

    def purge_closed(self, closed: Callable[[set[str]], set[str]]) -> int:
        """As MppsStore.purge_closed: attributes of instances whose orders all passed retention."""
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT uid, accessions FROM mpps WHERE attributes != '{}' AND accessions != '[]'").fetchall()
        wanted = {(uid, tuple(json.loads(accs))) for uid, accs in rows}
        done = closed({a for _, accs in wanted for a in accs}) if wanted else set()
        uids = [uid for uid, accs in wanted if accs and all(a in done for a in accs)]
        if not uids:
            return 0
        with self.pool.connection() as conn:
            return conn.execute("UPDATE mpps SET attributes = '{}' WHERE uid = ANY(%s)", (uids,)).rowcount
