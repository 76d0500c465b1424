"""One write transaction on a SQLite connection that other threads or processes also write.

IMMEDIATE takes the write lock at BEGIN, so a writer elsewhere makes this one wait (the busy
timeout) instead of failing half-way with SQLITE_BUSY; a failed statement or COMMIT rolls back
what is left.
"""

from __future__ import annotations

import sqlite3


class ImmediateTransaction:
    """`with ImmediateTransaction(db) as cur:` BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Cursor:
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        return cur

    def __exit__(self, kind, err, tb) -> None:  # noqa: ANN001
        if kind is None:
            try:
                self.db.execute("COMMIT")
                return
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        if self.db.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
            self.db.execute("ROLLBACK")
