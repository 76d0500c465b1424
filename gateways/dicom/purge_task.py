"""The retention purge as a background task of the process that owns the stores (radflow/service/retention.py).

The worker purges worklist rows and report documents, both purge order index rows; the DICOM gateway passes its MPPS store
and spool. Here rather than in the service layer because the worklist store is the gateway's.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from radflow.gateways.dicom.read_models import worklist_store
from radflow.infra.attachments import attachment_store
from radflow.infra.order_index_store import order_index_store
from radflow.infra.settings import Settings
from radflow.service.retention import RetentionPurge


def start_purge(settings: Settings, *, worker: bool = False, **stores: Any) -> asyncio.Task | None:
    """The retention purge of the stores this process owns (radflow/service/retention.py); worker: the
    worklist rows and report documents; the DICOM gateway passes its MPPS store and spool."""
    if "worklist" not in settings.sync_consumers:
        return None  # no closure notes: nothing to purge by
    if worker:
        stores["attachments"] = attachment_store(settings)
    # Both purgers drop index rows: whichever marks an order purged first must take its rows along.
    stores.setdefault("order_index", order_index_store(settings))
    purge = RetentionPurge.from_settings(settings, stores.pop("worklist", None) or worklist_store(settings), **stores)
    return asyncio.create_task(purge.run(settings.retention_purge_interval_s), name="retention-purge")


async def stop_purge(task: asyncio.Task | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
