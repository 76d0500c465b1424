"""The order index in the read-model database: patient / placer / study key -> accessions.

Every order's keys are written here before its AA (radflow/service/ordering.py), so the
lookups that must not miss (patient fan-out and merges, placer and study lookups) find an
acknowledged order at once, from any process that shares the database. It replaced the
OrderIndex bucket workflows (workflows/order_index.py), which cost the Temporal server a
write and the worker a workflow task per order (docs/workflow.md "Upgrades").

`SqliteOrderIndex` is one file on one host (the embedded default; `radflow dev` and several
processes of one host share it: WAL, busy timeout). Its writes commit with
`synchronous=FULL`: in WAL mode `NORMAL` does not fsync the log at commit, so a row an AA
was sent for could vanish with a power cut. `PgOrderIndex` is the shared PostgreSQL
database of RADFLOW_READ_MODEL_URL (table `order_index`, radflow/infra/read_model_db.py);
a commit is durable with synchronous_commit on, the server default.

Rows keep their insertion order (`seq`): a lookup lists accessions oldest first, so `[-1]`
is the latest order of a placer key. An (key, accession) pair is stored once; adding it
again keeps its first position.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from radflow.infra.private_files import private_file
from radflow.infra.sqlite_tx import ImmediateTransaction

Entries = dict[str, list[str]]


class OrderIndexStore(Protocol):
    def add(self, entries: Entries) -> None:
        """Record each accession under its key, in one transaction; durable on return."""
        ...

    def forget(self, entries: Entries) -> None:
        """Remove these (key, accession) pairs."""
        ...

    def lookup(self, keys: Iterable[str]) -> Entries:
        """Accessions under each key (absent keys: no entry), oldest first."""
        ...

    def drop_accessions(self, accessions: Iterable[str]) -> int:
        """Remove every row of these orders (the retention purge); returns the rows removed."""
        ...


def _pairs(entries: Entries) -> list[tuple[str, str]]:
    return [(key, acc) for key, accessions in entries.items() for acc in accessions if acc]


def _columns(entries: Entries) -> tuple[list[str], list[str]] | None:
    """(keys, accessions) as two parallel arrays for PostgreSQL's unnest; None when empty."""
    pairs = _pairs(entries)
    return ([k for k, _ in pairs], [a for _, a in pairs]) if pairs else None


def _grouped(rows: Iterable[tuple[str, str]]) -> Entries:
    out: Entries = {}
    for key, acc in rows:
        out.setdefault(key, []).append(acc)
    return out


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS order_index (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    accession TEXT NOT NULL,
    UNIQUE (key, accession)
);
CREATE INDEX IF NOT EXISTS order_index_accession ON order_index(accession);
"""


class SqliteOrderIndex:
    """One connection, used by one thread at a time: calls come from `asyncio.to_thread`.

    `path=":memory:"` is a process-local index (tests and one-process tools only: it is
    lost with the process)."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL", busy_timeout_s: float = 10.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            private_file(self.path)  # MRN keys: owner-only, like the other read models
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA secure_delete = ON")  # purged MRN keys are zeroed, not left in free pages
        self._db.executescript(SQLITE_SCHEMA)

    def add(self, entries: Entries) -> None:
        pairs = _pairs(entries)
        if pairs:
            self._write("INSERT INTO order_index (key, accession) VALUES (?, ?) ON CONFLICT DO NOTHING", pairs)

    def forget(self, entries: Entries) -> None:
        pairs = _pairs(entries)
        if pairs:
            self._write("DELETE FROM order_index WHERE key = ? AND accession = ?", pairs)

    def drop_accessions(self, accessions: Iterable[str]) -> int:
        rows = [(a,) for a in dict.fromkeys(accessions)]
        if not rows:
            return 0
        with self._lock:
            before = self._db.total_changes
            with ImmediateTransaction(self._db) as cur:
                cur.executemany("DELETE FROM order_index WHERE accession = ?", rows)
            return self._db.total_changes - before

    def lookup(self, keys: Iterable[str]) -> Entries:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        with self._lock:
            rows = self._db.execute(f"SELECT key, accession FROM order_index WHERE key IN ({marks}) ORDER BY seq",
                                    wanted).fetchall()
        return _grouped(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, pairs: list[tuple[str, str]]) -> None:
        with self._lock, ImmediateTransaction(self._db) as cur:
            cur.executemany(sql, pairs)


class PgOrderIndex:
    """The shared index on PostgreSQL: one statement per call (arrays), so one round trip."""

    def __init__(self, pool) -> None:
        self.pool = pool

    def add(self, entries: Entries) -> None:
        if not (columns := _columns(entries)):
            return
        with self.pool.connection() as conn:
            # ORDER BY n: identities follow the caller's order (the latest placer entry last).
            conn.execute("INSERT INTO order_index (key, accession) "
                         "SELECT k, a FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(k, a, n) ORDER BY n "
                         "ON CONFLICT (key, accession) DO NOTHING", columns)

    def forget(self, entries: Entries) -> None:
        if not (columns := _columns(entries)):
            return
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM order_index WHERE (key, accession) IN "
                         "(SELECT k, a FROM unnest(%s::text[], %s::text[]) AS t(k, a))", columns)

    def drop_accessions(self, accessions: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(accessions))
        if not wanted:
            return 0
        with self.pool.connection() as conn:
            return conn.execute("DELETE FROM order_index WHERE accession = ANY(%s)", (wanted,)).rowcount

    def lookup(self, keys: Iterable[str]) -> Entries:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT key, accession FROM order_index WHERE key = ANY(%s) ORDER BY seq",
                                (wanted,)).fetchall()
        return _grouped(rows)


def order_index_store(settings) -> OrderIndexStore:
    """The configured index: the PostgreSQL database when RADFLOW_READ_MODEL_URL is set, else
    the SQLite file settings.order_index_db_path() (default <data dir>/order_index.db)."""
    url = settings.read_model_url.get_secret_value()
    if url:
        from radflow.infra.read_model_db import pool

        return PgOrderIndex(pool(url, max_size=settings.read_model_pool_max))
    return SqliteOrderIndex(settings.order_index_db_path())
