"""The Modality Worklist read model: one row per order, shared by worker and gateway.

SQLite here (the embedded default, one host); the same model on PostgreSQL for several hosts
is `pg_worklist_store.py`, chosen by RADFLOW_READ_MODEL_URL (read_models.py).

Source of truth is the order workflow. The worker's `sync_worklist` activity writes the
order's row after every applied change (one activity hop after the change, ~50 ms);
the DICOM gateway only reads. Guarantees:
- An order scheduled through HL7/FHIR/API is on the worklist once that activity ran
  (target < 1 s after the ACK); cancelled, discontinued, acquired... orders lose
  visibility the same way. Rows are never deleted, only hidden (sps_status ''), so a late
  retry of an older snapshot cannot resurrect a cancelled order: a row only takes a
  snapshot whose version (the order's updated_at) is not older than its own. A row
  scrubbed by the retention purge (item '{}') takes no snapshot at all.
- Started orders (SPS STARTED) stay in the table; whether a C-FIND shows them is the
  gateway's `mwl_show_started` setting, so changing it needs no rebuild.
- Lost or suspect? Rebuild from the workflows (`activities.worklist_sync.rebuild_worklist`).

Connections are opened per call: pynetdicom runs each association in its own thread and
SQLite connections must not cross threads; WAL lets readers run beside the writer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

from radflow.domain.dicom.matching import Query
from radflow.domain.dicom.mwl import SPS, Item, WorklistEntry
from radflow.gateways.dicom.sqlite_file import SqliteFile
from radflow.infra.sqlite_tx import ImmediateTransaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS worklist (
    accession TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    sps_status TEXT NOT NULL,
    station_ae TEXT NOT NULL,
    modality TEXT NOT NULL,
    start_date TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    requested_procedure_id TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    sps_id TEXT NOT NULL,
    item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS wl_station ON worklist(station_ae, sps_status);
CREATE INDEX IF NOT EXISTS wl_modality ON worklist(modality, sps_status);
CREATE INDEX IF NOT EXISTS wl_date ON worklist(start_date, sps_status);
CREATE INDEX IF NOT EXISTS wl_patient ON worklist(patient_id);
CREATE INDEX IF NOT EXISTS wl_rpid ON worklist(requested_procedure_id);
CREATE INDEX IF NOT EXISTS wl_study ON worklist(study_uid);
CREATE INDEX IF NOT EXISTS wl_sps ON worklist(sps_id);
CREATE INDEX IF NOT EXISTS wl_status ON worklist(sps_status);
CREATE TABLE IF NOT EXISTS closed_orders (
    accession TEXT PRIMARY KEY,
    closed_at TEXT NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]',
    purged_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS closed_due ON closed_orders(purged_at, closed_at);
"""

_UPSERT = """
INSERT INTO worklist (accession, version, sps_status, station_ae, modality, start_date, patient_id,
                      requested_procedure_id, study_uid, sps_id, item)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(accession) DO UPDATE SET
    version = excluded.version, sps_status = excluded.sps_status, station_ae = excluded.station_ae,
    modality = excluded.modality, start_date = excluded.start_date, patient_id = excluded.patient_id,
    requested_procedure_id = excluded.requested_procedure_id, study_uid = excluded.study_uid,
    sps_id = excluded.sps_id, item = excluded.item
WHERE excluded.version >= worklist.version AND worklist.item != '{}'
"""

# Retention (shared with the PostgreSQL store: placeholders are replaced there).
_NOTE_CLOSED = """
INSERT INTO closed_orders (accession, closed_at, attachments) VALUES (?, ?, ?)
ON CONFLICT(accession) DO UPDATE SET closed_at = excluded.closed_at, attachments = excluded.attachments
WHERE closed_orders.purged_at = ''
"""
_DUE = ("SELECT accession, attachments FROM closed_orders WHERE purged_at = '' AND closed_at <= ? "
        "ORDER BY closed_at LIMIT ?")
_SCRUB = ("UPDATE worklist SET item = '{{}}', patient_id = '', requested_procedure_id = '', study_uid = '', "
          "sps_id = '', sps_status = '' WHERE accession IN ({marks})")

_MARK_PURGED = "UPDATE closed_orders SET purged_at = ?, attachments = '[]' WHERE accession IN ({marks})"


def _note_closure(db: Any, accession: str, closed_at: str, attachments: list[str], ph: str = "?") -> None:
    """The closure note on an open connection (SQLite or psycopg: `ph` is its placeholder)."""
    if closed_at:
        db.execute(_NOTE_CLOSED.replace("?", ph), (accession, closed_at, json.dumps(sorted(set(attachments)))))
    else:
        db.execute(f"DELETE FROM closed_orders WHERE accession = {ph} AND purged_at = ''", (accession,))


def closed_before_sql(count: int, ph: str) -> str:
    return f"SELECT accession FROM closed_orders WHERE closed_at <= {ph} AND accession IN ({','.join([ph] * count)})"


# Query keys an index can narrow (exact values); the Python matcher then decides.
_TOP_COLUMNS = {
    "AccessionNumber": "accession",
    "PatientID": "patient_id",
    "RequestedProcedureID": "requested_procedure_id",
    "StudyInstanceUID": "study_uid",
}
_SPS_COLUMNS = {
    "ScheduledStationAETitle": "station_ae",
    "Modality": "modality",
    "ScheduledProcedureStepID": "sps_id",
    "ScheduledProcedureStepStatus": "sps_status",
}


class QueryBudgetExceeded(Exception):
    """A C-FIND ran past its time budget; the SCP ends it with a failure status."""


class WorklistStore(SqliteFile):
    """The SQLite implementation (one host; `radflow dev`). PostgreSQL: pg_worklist_store.py."""

    SCHEMA = SCHEMA

    # ------------------------------------------------------------- writes (worker)
    def apply(self, entry: WorklistEntry) -> bool:
        """Upsert the order's row; False when a newer snapshot is already stored."""
        with self._connect() as db:
            return db.execute(_UPSERT, row_params(entry)).rowcount > 0

    def sync(self, entry: WorklistEntry, closed_at: str, attachments: list[str]) -> bool:
        """`apply` and `note_closure` in one connection and one transaction (one commit, not two):
        what the worker's sync does after every order change."""
        with self._connect() as db, ImmediateTransaction(db):
            applied = db.execute(_UPSERT, row_params(entry)).rowcount > 0
            _note_closure(db, entry.accession, closed_at, attachments)
        return applied

    def apply_many(self, entries: Iterable[WorklistEntry]) -> int:
        count = 0
        with self._connect() as db, ImmediateTransaction(db):
            for entry in entries:
                count += db.execute(_UPSERT, row_params(entry)).rowcount
        return count

    def hide(self, accession: str) -> None:
        """Take a row off the worklist without a newer snapshot (rebuild: the order is gone)."""
        with self._connect() as db:
            db.execute("UPDATE worklist SET sps_status = '' WHERE accession = ?", (accession,))

    # ------------------------------------------------------------- reads (gateway)
    def find(self, query: Query, statuses: Iterable[str] = ("SCHEDULED",), limit: int = 0,
             deadline: float | None = None) -> Iterator[Item]:
        """Items on the worklist matching the query, in scheduled order.

        `deadline` (a `time.monotonic()` value) bounds the matching: past it the search
        raises `QueryBudgetExceeded`, so one query cannot hold an association (or the
        CPU) for longer than the budget however many rows it has to look at.
        """
        sql, params = find_sql(query, statuses, "?")
        with self._connect() as db:
            rows = db.execute(sql, params).fetchall()  # no read transaction held while answering
        return match_rows(rows, query, limit, deadline)

    def get(self, accession: str) -> WorklistEntry | None:
        with self._connect() as db:
            row = db.execute("SELECT accession, item, sps_status, version FROM worklist WHERE accession = ?", (accession,)).fetchone()
        return WorklistEntry(row[0], json.loads(row[1]), row[2], row[3]) if row else None

    def lookup_accession(self, *, requested_procedure_id: str = "", study_uid: str = "", sps_id: str = "") -> str | None:
        """The order an MPPS refers to when it carries no accession (hidden rows included)."""
        for column, value in (("requested_procedure_id", requested_procedure_id), ("study_uid", study_uid), ("sps_id", sps_id)):
            if not value:
                continue
            with self._connect() as db:
                rows = db.execute(f"SELECT accession FROM worklist WHERE {column} = ? LIMIT 2", (value,)).fetchall()
            if len(rows) == 1:  # ambiguous keys (two orders) match nothing
                return rows[0][0]
        return None

    def visible_accessions(self) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT accession FROM worklist WHERE sps_status != ''")]

    def count(self, visible_only: bool = True) -> int:
        with self._connect() as db:
            sql = "SELECT COUNT(*) FROM worklist" + (" WHERE sps_status != ''" if visible_only else "")
            return int(db.execute(sql).fetchone()[0])

    # ------------------------------------------------------------- retention (radflow/service/retention.py)
    def note_closure(self, accession: str, closed_at: str, attachments: list[str]) -> None:
        """The order closed at `closed_at` (its PHI leaves after the retention period); "" = open again."""
        with self._connect() as db:
            _note_closure(db, accession, closed_at, attachments)

    def due_for_purge(self, closed_before: str, limit: int = 500) -> list[tuple[str, list[str]]]:
        """(accession, attachment hashes) of orders closed at or before `closed_before`, not purged yet."""
        with self._connect() as db:
            rows = db.execute(_DUE, (closed_before, limit)).fetchall()
        return [(acc, json.loads(atts)) for acc, atts in rows]

    def closed_before(self, closed_before: str, accessions: Iterable[str]) -> set[str]:
        """Which of `accessions` closed at or before `closed_before` (purged ones included)."""
        wanted = list(accessions)
        found: set[str] = set()
        with self._connect() as db:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                sql = closed_before_sql(len(chunk), "?")
                found.update(r[0] for r in db.execute(sql, [closed_before, *chunk]))
        return found

    def purge(self, accessions: list[str], purged_at: str) -> int:
        """Scrub the orders' rows down to accession, version and status (no name, MRN, birth date)."""
        if not accessions:
            return 0
        marks = ",".join("?" * len(accessions))
        with self._connect() as db:
            db.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left readable in the file
            with ImmediateTransaction(db):
                count = db.execute(_SCRUB.format(marks=marks), accessions).rowcount
                db.execute(_MARK_PURGED.format(marks=marks), [purged_at, *accessions])
        return count


def find_sql(query: Query, statuses: Iterable[str], ph: str) -> tuple[str, list[object]]:
    """The SELECT that narrows a C-FIND by the indexed columns (`ph`: the driver's placeholder).

    Shared by the SQLite and PostgreSQL stores: the same rows come back, the Python matcher decides."""
    wanted = [s for s in statuses if s]
    where = [f"sps_status IN ({','.join([ph] * len(wanted))})"]
    params: list[object] = list(wanted)
    _narrow(query, _TOP_COLUMNS, where, params, ph)
    sps_key = query.key(SPS)
    if sps_key is not None and sps_key.sub is not None:
        _narrow(sps_key.sub, _SPS_COLUMNS, where, params, ph)
        date_key = sps_key.sub.key("ScheduledProcedureStepStartDate")
        if date_key is not None and date_key.date_range:
            lo, hi = date_key.date_range
            if lo:
                where.append(f"start_date >= {ph}")
                params.append(lo)
            if hi:
                where.append(f"start_date <= {ph}")
                params.append(hi)
    return f"SELECT item FROM worklist WHERE {' AND '.join(where)} ORDER BY start_date, accession", params


def match_rows(rows: Iterable[tuple[str]], query: Query, limit: int, deadline: float | None) -> Iterator[Item]:
    sent = 0
    for (raw,) in rows:
        if deadline is not None and time.monotonic() > deadline:
            raise QueryBudgetExceeded()
        item = json.loads(raw)
        if query.matches(item):
            yield item
            sent += 1
            if limit and sent >= limit:
                return


def _narrow(query: Query, columns: dict[str, str], where: list[str], params: list[object], ph: str) -> None:
    for keyword, column in columns.items():
        key = query.key(keyword)
        if key is None or not key.exact:
            continue
        where.append(f"{column} IN ({','.join([ph] * len(key.exact))})")
        params.extend(key.exact)


def row_params(entry: WorklistEntry) -> tuple[object, ...]:
    item = entry.item
    sps = item[SPS][0]
    return (
        entry.accession,
        entry.version,
        entry.sps_status,
        sps.get("ScheduledStationAETitle", ""),
        sps.get("Modality", ""),
        sps.get("ScheduledProcedureStepStartDate", ""),
        item.get("PatientID", ""),
        item.get("RequestedProcedureID", ""),
        item.get("StudyInstanceUID", ""),
        sps.get("ScheduledProcedureStepID", ""),
        json.dumps(item, ensure_ascii=False, separators=(",", ":")),
    )
