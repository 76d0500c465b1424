"""`archive_study`: forward the study from the spool to the archive, then confirm its count.

Idempotent by construction: an instance is marked forwarded in the spool index only after
the archive's success status, so a retry (or a worker crash) resends only what was not
confirmed (plus what the archive acknowledged but does not list, see below). The order becomes ACQUIRED only after the archive's own C-FIND count equals
what radflow received; a mismatch is a retryable ArchiveCountMismatch (after the last
attempt the order goes to NEEDS_ATTENTION with the numbers).

Runs in the DICOM gateway's own worker, on the gateway's task queue (gateways/dicom/archive_worker.py):
it reads the instances from that gateway's spool database (big ones from their files) and sends
them byte for byte. The order learns the queue from the gateway's study events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from radflow.domain.definitions import ErrorType
from radflow.domain.order import StepRequest, StepResult
from radflow.gateways.dicom.archive_client import ArchiveClient, ArchiveUnreachable
from radflow.infra.tls import client_context
from radflow.gateways.dicom.spool import Spool, spool_dir
from radflow.infra.settings import Settings

log = logging.getLogger("radflow.activities.archive")

# Without a heartbeat timeout (ImagingOrder v1 calls): stop forwarding this far into the
# attempt's start-to-close timeout, so the attempt reports its progress instead of being
# timed out mid-association.
TIME_BUDGET_FRACTION = 0.7


class Progress:
    """Instances the archive acknowledged in this attempt; written by the forwarding thread."""

    def __init__(self) -> None:
        self.stored = 0


def count_verdict(archived: int, received: int, note: str = "") -> StepResult:
    """The archive must hold exactly what radflow received; anything else is retried."""
    if archived != received:
        suffix = f" ({note})" if note else ""
        raise ApplicationError(f"archive has {archived} of {received} instances{suffix}",
                               type=ErrorType.ARCHIVE_COUNT_MISMATCH)
    return StepResult(outcome="delivered", detail=f"archive confirmed {archived} instances")


class ArchiveActivities:
    def __init__(self, settings: Settings, *, spool: Callable[[], Spool] | None = None,
                 client: ArchiveClient | None = None) -> None:
        self.settings = settings
        self._spool_factory = spool or (lambda: Spool(spool_dir(settings), fsync=settings.dicom_spool_fsync))
        self._spool: Spool | None = None
        self.client = client or ArchiveClient(
            settings.dicom_archive_host,
            settings.dicom_archive_port,
            settings.dicom_archive_ae_title,
            settings.dicom_ae_title,
            settings.dicom_archive_timeout_s,
            tls=client_context(settings, "dicom_archive"),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveActivities:
        return cls(settings)

    def spool(self) -> Spool:
        if self._spool is None:
            self._spool = self._spool_factory()
        return self._spool

    @activity.defn(name="archive_study")
    async def archive_study(self, req: StepRequest) -> StepResult:
        if not self.settings.dicom_archive_host:
            return StepResult(outcome="not_configured", detail="spool is the store")
        study_uid = req.state.study.study_instance_uid or req.state.order.study_instance_uid
        if not study_uid:
            raise ApplicationError(f"order {req.accession} has no study to archive", type=ErrorType.INVALID_EVENT,
                                   non_retryable=True)
        # Every study of the order (a second acquisition is archived like the first).
        uids = [study_uid] + [x.study_instance_uid for x in req.state.extra_studies if x.study_instance_uid != study_uid]
        info = activity.info()
        progress = Progress()  # shared by the studies: the count keeps growing across them
        beating: asyncio.Task | None = None
        deadline = None
        if info.heartbeat_timeout:
            # v2 lanes: the attempt runs as long as instances keep going out; a stall longer
            # than the heartbeat timeout fails it and the retry policy starts the next one.
            beating = asyncio.create_task(_heartbeat_progress(progress, info.heartbeat_timeout.total_seconds()))
        elif info.start_to_close_timeout:
            deadline = time.monotonic() + info.start_to_close_timeout.total_seconds() * TIME_BUDGET_FRACTION
        try:
            results = [await asyncio.to_thread(self._archive, req.accession, uid, deadline, progress) for uid in uids]
        except ArchiveUnreachable as err:
            raise ApplicationError(str(err), type=ErrorType.ARCHIVE_UNREACHABLE) from err
        finally:
            if beating is not None:
                beating.cancel()
        if len(results) == 1:
            return results[0]
        return StepResult(outcome="delivered", detail=f"{len(results)} studies: " + "; ".join(r.detail for r in results))

    def _archive(self, accession: str, study_uid: str, deadline: float | None,
                 progress: Progress | None = None) -> StepResult:
        spool = self.spool()
        received = spool.instance_count(study_uid)
        if received == 0:
            raise ApplicationError(
                f"spool {spool.root} holds no instance of study {study_uid} (archive_study must run on the queue of the gateway that received it)",
                type=ErrorType.SPOOL_MISSING,
            )
        todo = spool.instances(study_uid, unforwarded_only=True)
        progress = progress or Progress()

        def stored(sop_uid: str) -> None:
            spool.mark_forwarded(sop_uid)
            progress.stored += 1

        report = self.client.forward(todo, spool.read, stored, deadline)
        log.info("study forwarded to archive", extra={"accession": accession, "study_uid": study_uid,
                                                      "sent": report.stored, "failed": len(report.failed),
                                                      "already_forwarded": received - len(todo)})
        if report.stopped_early:
            left = len(todo) - report.stored - len(report.failed)
            raise ApplicationError(f"forwarded {report.stored} instances this attempt, {left} left: continuing",
                                   type=ErrorType.ARCHIVE_FORWARD_INCOMPLETE)
        archived = self.client.count_instances(study_uid)
        notes = []
        if report.failed:
            notes.append(f"{len(report.failed)} C-STORE failures, e.g. {next(iter(report.failed.values()))}")
        if archived != received:
            # An archive may answer success and still not keep an instance (filters, lost
            # storage): whatever it does not list is sent again on the next attempt.
            present = self.client.list_instances(study_uid)
            lost = [i.sop_instance_uid for i in spool.instances(study_uid)
                    if i.forwarded and i.sop_instance_uid not in present]
            if lost:
                spool.unmark_forwarded(lost)
                notes.append(f"{len(lost)} acknowledged but missing, to be sent again")
        return count_verdict(archived, received, "; ".join(notes))


async def _heartbeat_progress(progress: Progress, timeout_s: float) -> None:
    """Heartbeat only when the count moved: a stalled forward then times out and is retried."""
    every = max(min(timeout_s / 4, 5.0), 0.05)
    activity.heartbeat(progress.stored)  # started (the first association may take a while)
    last = progress.stored
    while True:
        await asyncio.sleep(every)
        if progress.stored != last:
            last = progress.stored
            activity.heartbeat(last)
