"""PostgreSQL for the shared read models: one connection pool per process, versioned migrations.

psycopg 3 with psycopg_pool: the stores are called from pynetdicom's association threads and
from `asyncio.to_thread`, so the pool is the thread-safe synchronous one; each call borrows a
connection (autocommit) for one statement or one transaction.

Migrations are numbered SQL steps, applied at start by every process that opens the store.
They run inside one transaction holding a transaction-level advisory lock, so two gateways
and a worker starting together apply each step once and the others wait, then see it done.
A step never changes once released: a new schema is a new step.
"""

from __future__ import annotations

import logging
import threading

from psycopg_pool import ConnectionPool

log = logging.getLogger("radflow.read_models")

# pg_advisory_xact_lock key: "radflow" in ASCII, so other applications' locks do not collide.
MIGRATION_LOCK = 0x7261_6466_6C6F_77

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "worklist read model", """
CREATE TABLE worklist (
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
CREATE INDEX wl_station ON worklist(station_ae, sps_status);
CREATE INDEX wl_modality ON worklist(modality, sps_status);
CREATE INDEX wl_date ON worklist(start_date, sps_status);
CREATE INDEX wl_patient ON worklist(patient_id);
CREATE INDEX wl_rpid ON worklist(requested_procedure_id);
CREATE INDEX wl_study ON worklist(study_uid);
CREATE INDEX wl_sps ON worklist(sps_id);
CREATE INDEX wl_status ON worklist(sps_status);
"""),
    (2, "MPPS instances", """
CREATE TABLE mpps (
    uid TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    accessions TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX mpps_status ON mpps(status);
"""),
    (3, "report attachments", """
CREATE TABLE attachments (
    sha256 TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""),
    (4, "closed orders (retention purge)", """
CREATE TABLE closed_orders (
    accession TEXT PRIMARY KEY,
    closed_at TEXT NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]',
    purged_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX closed_due ON closed_orders(purged_at, closed_at);
"""),
    (5, "order index (patient / placer / study key -> accessions)", """
CREATE TABLE order_index (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key TEXT NOT NULL,
    accession TEXT NOT NULL,
    UNIQUE (key, accession)
);
CREATE INDEX order_index_accession ON order_index(accession);
"""),
]

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()


def pool(url: str, *, max_size: int = 10, timeout_s: float = 10.0) -> ConnectionPool:
    """The process's pool for this database, opened (and migrated) on first use.

    Raises when the server cannot be reached within `timeout_s`: a process that cannot
    reach its read models must not start (systemd / Kubernetes restart it)."""
    with _lock:
        existing = _pools.get(url)
        if existing is not None:
            return existing
        created = ConnectionPool(url, min_size=1, max_size=max_size, kwargs={"autocommit": True}, open=False,
                                 name="radflow-read-models", timeout=timeout_s)
        created.open(wait=True, timeout=timeout_s)
        try:
            migrate(created)
        except BaseException:
            created.close()
            raise
        _pools[url] = created
        return created


def close_pool(url: str) -> None:
    with _lock:
        p = _pools.pop(url, None)
    if p is not None:
        p.close()


def close_all() -> None:
    with _lock:
        for p in _pools.values():
            p.close()
        _pools.clear()


def migrate(p: ConnectionPool) -> list[int]:
    """Apply the steps this database lacks; returns the versions applied now (idempotent)."""
    applied_now: list[int] = []
    with p.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS radflow_migrations ("
                     "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        done = {row[0] for row in conn.execute("SELECT version FROM radflow_migrations")}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO radflow_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied_now.append(version)
    if applied_now:
        log.info("read model migrations applied", extra={"versions": ",".join(map(str, applied_now))})
    return applied_now
