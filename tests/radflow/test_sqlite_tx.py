"""ImmediateTransaction: commits what ran, rolls back all of it on an error, holds the write lock from BEGIN."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from radflow.infra.sqlite_tx import ImmediateTransaction


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    db.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    return db


def test_commit_and_rollback(tmp_path: Path) -> None:
    db = _db(tmp_path / "t.db")
    with ImmediateTransaction(db) as cur:
        cur.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    with pytest.raises(RuntimeError), ImmediateTransaction(db) as cur:
        cur.execute("INSERT INTO t VALUES (3)")
        raise RuntimeError("half-way")
    assert not db.in_transaction
    assert [v for (v,) in db.execute("SELECT v FROM t ORDER BY v")] == [1, 2]


def test_the_write_lock_is_taken_at_begin(tmp_path: Path) -> None:
    first, second = _db(tmp_path / "t.db"), _db(tmp_path / "t.db")
    with ImmediateTransaction(first):
        with pytest.raises(sqlite3.OperationalError, match="locked"), ImmediateTransaction(second):
            pass  # never reached: BEGIN IMMEDIATE waits for the lock, then gives up
        assert not second.in_transaction
