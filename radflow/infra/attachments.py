"""Report documents (PDF, CDA...) kept outside workflow history, addressed by SHA-256.

Temporal payloads stay small: the order workflow holds an `Attachment` (hash, content
type, size) and the bytes live here. The MLLP gateway puts a document durably (written,
fsynced, renamed, directory fsynced) *before* it sends the report event to Temporal, so
its AA still means "durable"; the delivery activities read it back by hash.

`FileAttachmentStore` is one directory on one host (the gateway and the worker must
see the same path): the embedded default. With RADFLOW_READ_MODEL_URL set (several hosts,
issue 12) `PgAttachmentStore` keeps the bytes in that PostgreSQL database instead, so
the delivery activities on the shared queue read no local disk; its put returns after
the row's commit (synchronous_commit on, the server default), so AA still means durable.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from radflow.infra.private_files import private_dir

_HEX64 = re.compile(r"[0-9a-f]{64}")


class AttachmentMissing(LookupError):
    pass


class AttachmentStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store durably; returns the SHA-256 hex digest (the key). Idempotent."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes, checked against their hash; AttachmentMissing when absent."""
        ...


class FileAttachmentStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync

    def _path(self, sha256: str) -> Path:
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        if path.exists() and path.stat().st_size == len(data):
            return sha  # content-addressed: same name, same bytes
        private_dir(path.parent)  # report documents: owner-only
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.fsync:
            for directory in (path.parent, self.root):
                dfd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        return sha

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError as err:
            raise AttachmentMissing(f"attachment {sha256} is not in {self.root}") from err
        if hashlib.sha256(data).hexdigest() != sha256:
            raise AttachmentMissing(f"attachment {sha256} in {self.root} is corrupt (hash differs)")
        return data

    def delete(self, sha256: str) -> bool:
        """Remove a document (retention, radflow/service/retention.py); False when it was not there."""
        try:
            self._path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True


class PgAttachmentStore:
    """Report documents in the shared PostgreSQL database (table `attachments`, radflow/infra/read_model_db.py)."""

    def __init__(self, pool) -> None:
        self.pool = pool

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with self.pool.connection() as conn:
            # Content-addressed: a second put of the same bytes is the same row.
            conn.execute("INSERT INTO attachments (sha256, data) VALUES (%s, %s) ON CONFLICT (sha256) DO NOTHING",
                         (sha, data))
        return sha

    def get(self, sha256: str) -> bytes:
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        with self.pool.connection() as conn:
            row = conn.execute("SELECT data FROM attachments WHERE sha256 = %s", (sha256,)).fetchone()
        if row is None:
            raise AttachmentMissing(f"attachment {sha256} is not in the database")
        data = bytes(row[0])
        if hashlib.sha256(data).hexdigest() != sha256:
            raise AttachmentMissing(f"attachment {sha256} in the database is corrupt (hash differs)")
        return data

    def delete(self, sha256: str) -> bool:
        """Remove a document (retention, radflow/service/retention.py); False when it was not there."""
        with self.pool.connection() as conn:
            return conn.execute("DELETE FROM attachments WHERE sha256 = %s", (sha256,)).rowcount > 0


def delete_attachment(store: AttachmentStore, sha256: str) -> bool:
    """Remove a document (retention); False when it was not there."""
    return bool(store.delete(sha256))  # type: ignore[attr-defined]


def attachment_store(settings) -> AttachmentStore:
    """The configured store: the PostgreSQL database when RADFLOW_READ_MODEL_URL is set, else
    settings.attachments_path() (default <data dir>/attachments)."""
    url = settings.read_model_url.get_secret_value()
    if url:
        from radflow.infra.read_model_db import pool

        return PgAttachmentStore(pool(url, max_size=settings.read_model_pool_max))
    return FileAttachmentStore(settings.attachments_path())
