"""PostgreSQL read-model migrations: versioned, applied at start, idempotent, safe when processes start together."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from radflow.infra.read_model_db import MIGRATIONS, migrate
from radflow.gateways.dicom.read_models import postgres_url, worklist_store
from radflow.infra.settings import Settings


def fresh_pool(url: str) -> ConnectionPool:
    p = ConnectionPool(url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False)
    p.open(wait=True, timeout=10)
    return p


def test_applied_once_in_order_then_nothing(pg_url: str) -> None:
    p = fresh_pool(pg_url)
    try:
        assert migrate(p) == [v for v, _, _ in MIGRATIONS]
        assert migrate(p) == []
        with p.connection() as conn:
            rows = conn.execute("SELECT version, name FROM radflow_migrations ORDER BY version").fetchall()
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert rows == [(v, name) for v, name, _ in MIGRATIONS]
        assert {"worklist", "mpps", "attachments", "radflow_migrations"} <= tables
    finally:
        p.close()


def test_concurrent_starts_apply_each_step_exactly_once(pg_url: str) -> None:
    """Eight processes' worth of pools migrate the same empty database at the same moment."""
    pools = [fresh_pool(pg_url) for _ in range(8)]
    results: list[list[int]] = []
    errors: list[BaseException] = []
    go = threading.Barrier(len(pools))

    def start(p: ConnectionPool) -> None:
        go.wait()
        try:
            results.append(migrate(p))
        except BaseException as err:  # noqa: BLE001 - surfaced below
            errors.append(err)

    threads = [threading.Thread(target=start, args=(p,)) for p in pools]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in pools:
        p.close()
    assert errors == []
    assert sorted(results, key=len) == [[]] * (len(pools) - 1) + [[v for v, _, _ in MIGRATIONS]]


def test_a_process_opening_the_store_migrates_it(pg_url: str, tmp_path) -> None:
    store = worklist_store(Settings(data_dir=tmp_path, read_model_url=pg_url))
    assert store.count() == 0
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM radflow_migrations").fetchone()[0] == len(MIGRATIONS)


def test_only_postgresql_urls_are_accepted(tmp_path) -> None:
    assert postgres_url(Settings(data_dir=tmp_path)) == ""
    with pytest.raises(ValueError, match="postgresql://"):
        worklist_store(Settings(data_dir=tmp_path, read_model_url="mysql://x@y/z"))
