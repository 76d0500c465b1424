"""The dev server's SQLite file: write-ahead log, synced at commit, nothing acknowledged lost on kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from radflow.devstack import DevServer, free_port
from radflow.infra.private_files import FILE_MODE

pytestmark = pytest.mark.integration


def test_a_file_backed_dev_server_asks_for_wal_synced_at_commit(tmp_path: Path) -> None:
    command = DevServer(db_file=tmp_path / "t.db", port=7299, ui_port=None).command()
    pragmas = [command[i + 1] for i, arg in enumerate(command) if arg == "--sqlite-pragma"]
    assert pragmas == ["journal_mode=wal", "synchronous=full"]
    assert "--sqlite-pragma" not in DevServer(db_file=None, port=7299, ui_port=None).command()


async def test_starts_acknowledged_before_a_kill_9_are_there_after_the_restart(tmp_path: Path) -> None:
    db = tmp_path / "data" / "temporal.db"
    ids = [f"wal-{uuid.uuid4().hex[:8]}-{i}" for i in range(40)]
    server = DevServer(db_file=db, port=free_port(), ui_port=None, log_file=tmp_path / "temporal.log")
    old_umask = os.umask(0o077)  # the radflow CLI's umask, which the server inherits
    try:
        await server.start()
    finally:
        os.umask(old_umask)
    try:
        client = await Client.connect(server.address)
        for wf_id in ids:  # no worker: a start is durable on its own
            await client.start_workflow("NoSuchWorkflow", id=wf_id, task_queue="nobody-polls")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as ro:
            assert ro.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        wal = db.with_name(db.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0  # the starts went to the log
        assert wal.stat().st_mode & 0o777 == FILE_MODE  # PHI: the log follows the file's owner-only mode
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGKILL)  # no checkpoint, no clean close
        server.process.wait()
    finally:
        server.stop()

    again = DevServer(db_file=db, port=free_port(), ui_port=None, log_file=tmp_path / "temporal.log")
    await again.start()
    try:
        client = await Client.connect(again.address)
        missing = []
        for wf_id in ids:
            try:
                await client.get_workflow_handle(wf_id).describe()
            except RPCError:
                missing.append(wf_id)
        assert missing == []
    finally:
        again.stop()
