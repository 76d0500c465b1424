"""Report document store: the file store (one host) and the PostgreSQL one (several hosts, issue 12.1)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import pytest

from radflow.infra.attachments import AttachmentMissing, FileAttachmentStore, PgAttachmentStore, attachment_store
from radflow.infra.settings import Settings

PDF = b"%PDF-1.4 synthetic report\n" + bytes(range(256)) * 40


@pytest.fixture(params=["file", "postgresql"])
def read_model_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else ""


def test_put_get_idempotent_and_missing(tmp_path: Path, read_model_url: str) -> None:
    store = attachment_store(Settings(data_dir=tmp_path, read_model_url=read_model_url))
    assert isinstance(store, PgAttachmentStore if read_model_url else FileAttachmentStore)
    sha = store.put(PDF)
    assert sha == hashlib.sha256(PDF).hexdigest() and store.put(PDF) == sha
    assert store.get(sha) == PDF
    with pytest.raises(AttachmentMissing):
        store.get(hashlib.sha256(b"never stored").hexdigest())
    with pytest.raises(ValueError):
        store.get("../../etc/passwd")


def test_with_postgresql_the_gateway_and_a_worker_on_another_host_share_documents(tmp_path: Path, pg_url: str) -> None:
    """The MLLP gateway's data dir and the worker's differ (two hosts): the database is what they share."""
    gateway = attachment_store(Settings(data_dir=tmp_path / "mllp-host", read_model_url=pg_url))
    worker = attachment_store(Settings(data_dir=tmp_path / "worker-host", read_model_url=pg_url))
    sha = gateway.put(PDF)
    assert worker.get(sha) == PDF
    assert not (tmp_path / "mllp-host").exists() and not (tmp_path / "worker-host").exists()  # no local disk
    # ... where the file store on two hosts cannot (why the shared backend exists).
    with pytest.raises(AttachmentMissing):
        attachment_store(Settings(data_dir=tmp_path / "w2")).get(
            attachment_store(Settings(data_dir=tmp_path / "g2")).put(PDF))


def test_a_corrupt_row_is_reported_missing_not_delivered(pg_url: str, tmp_path: Path) -> None:
    store = attachment_store(Settings(data_dir=tmp_path, read_model_url=pg_url))
    sha = store.put(PDF)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE attachments SET data = %s WHERE sha256 = %s", (PDF[:-1] + b"X", sha))
    with pytest.raises(AttachmentMissing, match="corrupt"):
        store.get(sha)
