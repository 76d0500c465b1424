"""The Modality Worklist read model on PostgreSQL: several gateways and workers share one worklist.

Same rows, same guarantees as the SQLite store (worklist_store.py): the worker writes a
row per order after every applied change and never lets an older snapshot replace a newer
one (the upsert's version guard), the gateways read; a C-FIND is one indexed SELECT, then
the Python matcher.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from psycopg_pool import ConnectionPool

from radflow.domain.dicom.matching import Query
from radflow.domain.dicom.mwl import Item, WorklistEntry
from radflow.gateways.dicom.worklist_store import (
    _DUE,
    _MARK_PURGED,
    _NOTE_CLOSED,
    _SCRUB,
    _UPSERT,
    _note_closure,
    closed_before_sql,
    find_sql,
    match_rows,
    row_params,
)

_PG_UPSERT = _UPSERT.replace("?", "%s")


class PgWorklistStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def apply(self, entry: WorklistEntry) -> bool:
        with self.pool.connection() as conn:
            return conn.execute(_PG_UPSERT, row_params(entry)).rowcount > 0

    def sync(self, entry: WorklistEntry, closed_at: str, attachments: list[str]) -> bool:
        with self.pool.connection() as conn, conn.transaction():
            applied = conn.execute(_PG_UPSERT, row_params(entry)).rowcount > 0
            _note_closure(conn, entry.accession, closed_at, attachments, ph="%s")
            return applied

    def apply_many(self, entries: Iterable[WorklistEntry]) -> int:
        rows = [row_params(entry) for entry in entries]
        if not rows:
            return 0
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(_PG_UPSERT, rows)  # pipelined: one round trip, not one per row
            return cur.rowcount  # the total over all rows (psycopg >= 3.1)

    def hide(self, accession: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("UPDATE worklist SET sps_status = '' WHERE accession = %s", (accession,))

    def find(self, query: Query, statuses: Iterable[str] = ("SCHEDULED",), limit: int = 0,
             deadline: float | None = None) -> Iterator[Item]:
        sql, params = find_sql(query, statuses, "%s")
        with self.pool.connection() as conn:
            rows = conn.execute(sql, params).fetchall()  # the connection goes back before matching
        return match_rows(rows, query, limit, deadline)

    def get(self, accession: str) -> WorklistEntry | None:
        import json

        with self.pool.connection() as conn:
            row = conn.execute("SELECT accession, item, sps_status, version FROM worklist WHERE accession = %s",
                               (accession,)).fetchone()
        return WorklistEntry(row[0], json.loads(row[1]), row[2], row[3]) if row else None

    def lookup_accession(self, *, requested_procedure_id: str = "", study_uid: str = "", sps_id: str = "") -> str | None:
        for column, value in (("requested_procedure_id", requested_procedure_id), ("study_uid", study_uid), ("sps_id", sps_id)):
            if not value:
                continue
            with self.pool.connection() as conn:
                rows = conn.execute(f"SELECT accession FROM worklist WHERE {column} = %s LIMIT 2", (value,)).fetchall()
            if len(rows) == 1:  # ambiguous keys (two orders) match nothing
                return rows[0][0]
        return None

    def visible_accessions(self) -> list[str]:
        with self.pool.connection() as conn:
            return [r[0] for r in conn.execute("SELECT accession FROM worklist WHERE sps_status != ''")]

    def count(self, visible_only: bool = True) -> int:
        sql = "SELECT COUNT(*) FROM worklist" + (" WHERE sps_status != ''" if visible_only else "")
        with self.pool.connection() as conn:
            return int(conn.execute(sql).fetchone()[0])

    # ------------------------------------------------------------- retention (radflow/service/retention.py)
    def note_closure(self, accession: str, closed_at: str, attachments: list[str]) -> None:
        with self.pool.connection() as conn:
            _note_closure(conn, accession, closed_at, attachments, ph="%s")

    def due_for_purge(self, closed_before: str, limit: int = 500) -> list[tuple[str, list[str]]]:
        import json

        with self.pool.connection() as conn:
            rows = conn.execute(_DUE.replace("?", "%s"), (closed_before, limit)).fetchall()
        return [(acc, json.loads(atts)) for acc, atts in rows]

    def closed_before(self, closed_before: str, accessions: Iterable[str]) -> set[str]:
        wanted = list(accessions)
        found: set[str] = set()
        with self.pool.connection() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                found.update(r[0] for r in conn.execute(closed_before_sql(len(chunk), "%s"), [closed_before, *chunk]))
        return found

    def purge(self, accessions: list[str], purged_at: str) -> int:
        if not accessions:
            return 0
        marks = ",".join(["%s"] * len(accessions))
        with self.pool.connection() as conn, conn.transaction():
            count = conn.execute(_SCRUB.format(marks=marks), accessions).rowcount
            conn.execute(_MARK_PURGED.replace("?", "%s").format(marks=marks), [purged_at, *accessions])
        return count
