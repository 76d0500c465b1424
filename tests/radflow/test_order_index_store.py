"""The order index store on SQLite and on a real PostgreSQL server: what the lookups rely on."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from radflow.infra.order_index_store import PgOrderIndex, SqliteOrderIndex, order_index_store
from radflow.infra.read_model_db import pool
from radflow.infra.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    return Settings(_env_file=None, data_dir=tmp_path, read_model_url=url)  # type: ignore[call-arg]


def test_settings_pick_the_store(settings: Settings) -> None:
    store = order_index_store(settings)
    expected = PgOrderIndex if settings.read_model_url.get_secret_value() else SqliteOrderIndex
    assert isinstance(store, expected)


def test_lookup_lists_accessions_oldest_first_and_an_add_again_keeps_its_place(settings: Settings) -> None:
    store = order_index_store(settings)
    store.add({"placer:P1^CPOE": ["A1"], "mrn:M1": ["A1"]})
    store.add({"placer:P1^CPOE": ["A2"], "mrn:M1": ["A2"]})
    store.add({"placer:P1^CPOE": ["A1"]})  # a resend of the first order
    store.add({"placer:P1^CPOE": ["A3", "A0"]})
    found = store.lookup(["placer:P1^CPOE", "mrn:M1", "mrn:nobody"])
    assert found == {"placer:P1^CPOE": ["A1", "A2", "A3", "A0"], "mrn:M1": ["A1", "A2"]}
    assert found["placer:P1^CPOE"][-1] == "A0"  # the latest


def test_forget_removes_only_the_named_pairs(settings: Settings) -> None:
    store = order_index_store(settings)
    store.add({"mrn:OLD": ["A1", "A2", "A3"], "mrn:NEW": ["A1"]})
    store.forget({"mrn:OLD": ["A1", "A3"], "mrn:absent": ["A9"]})
    assert store.lookup(["mrn:OLD", "mrn:NEW"]) == {"mrn:OLD": ["A2"], "mrn:NEW": ["A1"]}


def test_drop_accessions_removes_every_key_of_the_orders(settings: Settings) -> None:
    store = order_index_store(settings)
    store.add({"mrn:M": ["A1", "A2"], "placer:P^X": ["A1"], "study:1.2.3": ["A1"]})
    assert store.drop_accessions(["A1", "A1", "A9"]) == 3
    assert store.lookup(["mrn:M", "placer:P^X", "study:1.2.3"]) == {"mrn:M": ["A2"]}
    assert store.drop_accessions([]) == 0


def test_two_stores_on_one_database_see_each_others_rows_at_once(settings: Settings) -> None:
    # Two processes of one host (SQLite file) or of several hosts (PostgreSQL): a second store object
    # has its own connection, as another process would.
    one, two = order_index_store(settings), order_index_store(settings)
    if isinstance(one, PgOrderIndex):
        two = PgOrderIndex(pool(settings.read_model_url.get_secret_value()))
    one.add({"placer:X^Y": ["A1"]})
    assert two.lookup(["placer:X^Y"]) == {"placer:X^Y": ["A1"]}


def test_concurrent_writers_lose_nothing(settings: Settings) -> None:
    stores = [order_index_store(settings) for _ in range(4)]

    def write(i: int) -> None:
        for j in range(25):
            stores[i].add({f"mrn:M{j}": [f"A{i}-{j}"], f"placer:P{i}-{j}^X": [f"A{i}-{j}"]})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = stores[0].lookup([f"mrn:M{j}" for j in range(25)])
    assert sorted(len(v) for v in found.values()) == [4] * 25


def test_sqlite_file_is_owner_only_and_commits_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "data" / "order_index.db"
    store = SqliteOrderIndex(path)
    store.add({"mrn:M1": ["A1"]})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.with_name("order_index.db-wal")).st_mode) == 0o600
    # FULL (2): in WAL mode NORMAL would not fsync the log at commit, and a power cut could take an
    # acknowledged order's row along.
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert sqlite3.connect(path).execute("SELECT key, accession FROM order_index").fetchall() == [("mrn:M1", "A1")]


def test_sqlite_writer_waits_for_another_processes_lock_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "order_index.db"
    store = SqliteOrderIndex(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    done = threading.Event()
    writer = threading.Thread(target=lambda: (store.add({"mrn:M": ["A1"]}), done.set()))
    writer.start()
    assert not done.wait(0.3)
    other.execute("COMMIT")
    assert done.wait(10)
    writer.join()
    assert store.lookup(["mrn:M"]) == {"mrn:M": ["A1"]}


def test_sqlite_writer_fails_once_its_busy_timeout_passed(tmp_path: Path) -> None:
    path = tmp_path / "order_index.db"
    store = SqliteOrderIndex(path, busy_timeout_s=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError):
        store.add({"mrn:M": ["A1"]})
    other.execute("ROLLBACK")
    store.add({"mrn:M": ["A1"]})
    assert store.lookup(["mrn:M"]) == {"mrn:M": ["A1"]}
