"""The DICOM gateway's own Temporal worker: work that needs this gateway's spool runs here.

Temporal's worker-specific task queue pattern: the gateway serves
`<task_queue>-dicom-<gateway id>`, the study events it sends name that queue
(`StudyInfo.archive_queue`), and the order workflow schedules `archive_study` on it. So the
shared workers never read a spool, and a second gateway's images are forwarded by that
gateway. Only activities are registered: no workflow task ever lands on this queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from temporalio.client import Client
from temporalio.worker import Worker

from radflow.activities.archive import ArchiveActivities
from radflow.infra.activity_metrics import ActivityMetricsInterceptor
from radflow.infra.settings import Settings

log = logging.getLogger("radflow.dicom.archive_worker")


class GatewayWorker:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.queue = settings.gateway_task_queue()
        self.worker = Worker(client, task_queue=self.queue,
                             activities=[ArchiveActivities.from_settings(settings).archive_study],
                             interceptors=[ActivityMetricsInterceptor()])  # archive failures in /metrics (obs)
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run(), name="dicom-gateway-worker")
        await asyncio.sleep(0)
        log.info("gateway worker polling", extra={"task_queue": self.queue})

    async def stop(self) -> None:
        if self.task is None:
            return
        if not self.task.done():
            await self.worker.shutdown()  # running archive attempts finish or are retried elsewhere
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        self.task = None
