"""A small SQLite file shared by processes on one host (WAL; one short connection per call).

A connection per call keeps pynetdicom's association threads and the worker's activities
from sharing a connection object across threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from radflow.infra.private_files import private_file


class SqliteFile:
    SCHEMA = ""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        private_file(self.path)  # names and MRNs: owner-only (radflow/infra/private_files.py)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(self.SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            yield db
        finally:
            db.close()
