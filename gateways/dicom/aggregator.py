"""Per-study aggregation: turns thousands of C-STOREs into two or three workflow events.

The order workflow hears IMAGES_ARRIVING once per study and STUDY_STABLE once per quiet
period (no new instance for `stable_age_s`), with the counts read from the spool index.
Control ids (`{study}:arriving`, `{study}:stable:{count}`) make a resend after a crash a
no-op. What was told is saved in the spool index after Temporal confirmed it, so a
restarted gateway picks up exactly the studies whose news was not delivered yet.

Images without an accession go to the order that announced their Study Instance UID.
Images whose accession matches no order (or an order that refuses them, e.g. another
patient's images) become an unmatched-study item; once an operator links it, later
events go to the linked order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from radflow.domain.definitions import EventSource, UnmatchedKind
from radflow.domain.order import EventKind, OrderEvent, StudyInfo
from radflow.domain.unmatched import UnmatchedItem
from radflow.gateways.dicom.spool import Spool, StudyRecord
from radflow.service.ordering import EventRejected, OrderNotFound, OrderService
from radflow.service.unmatched import record_unmatched, resolve_unmatched

log = logging.getLogger("radflow.dicom.aggregator")

RecordUnmatched = Callable[[str, str, dict[str, Any], str], Awaitable[UnmatchedItem]]
FindByStudyUid = Callable[[str], Awaitable[str | None]]
ResolveUnmatched = Callable[[str, str, str, str], Awaitable[UnmatchedItem]]


@dataclass
class _Study:
    uid: str
    last_received: float
    dirty: bool = True  # instances arrived since the last STUDY_STABLE
    record: StudyRecord | None = None  # loaded from the spool on first use
    busy: bool = False
    retry_at: float = 0.0
    failures: int = 0


class StudyAggregator:
    def __init__(self, spool: Spool, service: OrderService, *, stable_age_s: float = 10.0,
                 clock: Callable[[], float] = time.time, tick_s: float | None = None,
                 max_concurrent: int = 8, retry_max_s: float = 30.0,
                 record: RecordUnmatched | None = None, resolve: ResolveUnmatched | None = None,
                 find_by_study_uid: FindByStudyUid | None = None, archive_queue: str = "") -> None:
        self.spool = spool
        self.archive_queue = archive_queue  # this gateway's task queue: the order archives from our spool there
        self.service = service
        self.stable_age_s = stable_age_s
        self.clock = clock
        self.tick_s = tick_s if tick_s is not None else max(0.05, min(1.0, stable_age_s / 4))
        self.retry_max_s = retry_max_s
        self._record = record or self._record_in_temporal
        self._resolve = resolve or self._resolve_in_temporal
        self._find_by_study_uid = find_by_study_uid
        self._studies: dict[str, _Study] = {}
        self._gate = asyncio.Semaphore(max_concurrent)
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Rebuild from the spool index (crash recovery), then run in the background."""
        await self.recover()
        self._runner = asyncio.create_task(self._run(), name="dicom-study-aggregator")

    async def recover(self) -> None:
        # The quiet period restarts now: senders whose associations broke with us are
        # about to resend, and a study declared stable in between would be acquired short.
        now = self.clock()
        for rec in await asyncio.to_thread(self.spool.pending_studies):
            self._studies[rec.study_uid] = _Study(rec.study_uid, max(rec.last_received, now),
                                                  dirty=rec.stable_sent_count != rec.instance_count)
        if self._studies:
            log.info("aggregator recovered pending studies", extra={"studies": len(self._studies)})

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ input
    def instance_received(self, study_uid: str, received_at: float) -> None:
        """Called on the event loop (the C-STORE thread hops here with call_soon_threadsafe)."""
        study = self._studies.get(study_uid)
        if study is None:
            self._studies[study_uid] = _Study(study_uid, received_at)
            self._wake.set()  # a new study: tell the order now, not at the next tick
            return
        study.last_received = max(study.last_received, received_at)
        study.dirty = True

    # ------------------------------------------------------------------ processing
    async def run_once(self, *, wait: bool = True) -> None:
        """Start the work that is due; with `wait`, also wait for it (tests drive this with a fake clock)."""
        now = self.clock()
        started = [self._spawn(s) for s in list(self._studies.values()) if self._due(s, now)]
        self._evict(now)
        if wait and started:
            await asyncio.gather(*started, return_exceptions=True)

    def pending(self) -> list[str]:
        return [s.uid for s in self._studies.values() if s.dirty or s.record is None or not s.record.arriving_sent]

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once(wait=False)
            except Exception:
                log.exception("aggregator pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick_s)
            self._wake.clear()

    def _due(self, s: _Study, now: float) -> bool:
        if s.busy or now < s.retry_at:
            return False
        if s.record is None or not s.record.arriving_sent:
            return True
        return s.dirty and now - s.last_received >= self.stable_age_s

    def _evict(self, now: float) -> None:
        idle = max(60.0, 10 * self.stable_age_s)
        for uid, s in list(self._studies.items()):
            if not s.busy and not s.dirty and s.record is not None and s.record.arriving_sent \
                    and now - s.last_received > idle:
                del self._studies[uid]

    def _spawn(self, s: _Study) -> asyncio.Task:
        s.busy = True
        task = asyncio.create_task(self._sync(s), name=f"study-sync-{s.uid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sync(self, s: _Study) -> None:
        async with self._gate:
            cleared = False
            try:
                if s.record is None:
                    rec = await asyncio.to_thread(self.spool.study, s.uid)
                    if rec is None:  # notified of an instance the index does not hold: nothing to tell
                        self._studies.pop(s.uid, None)
                        return
                    s.record = rec
                if not s.record.arriving_sent:
                    info = await asyncio.to_thread(self.spool.study_info, s.uid)
                    await self._tell(s, EventKind.IMAGES_ARRIVING, info, f"{s.uid}:arriving")
                    await asyncio.to_thread(self.spool.save_progress, s.uid, arriving_sent=True)
                    s.record = replace(s.record, arriving_sent=True)
                if s.dirty and self.clock() - s.last_received >= self.stable_age_s:
                    s.dirty, cleared = False, True  # arrivals from now on re-dirty it
                    info = await asyncio.to_thread(self.spool.study_info, s.uid)
                    if info.instance_count != s.record.stable_sent_count:
                        info.stable = True
                        await self._tell(s, EventKind.STUDY_STABLE, info, f"{s.uid}:stable:{info.instance_count}")
                        await asyncio.to_thread(self.spool.save_progress, s.uid, stable_sent_count=info.instance_count)
                        s.record = replace(s.record, stable_sent_count=info.instance_count)
                s.failures = 0
            except Exception as err:
                if cleared:
                    s.dirty = True
                s.failures += 1
                delay = min(self.retry_max_s, 0.5 * 2 ** min(s.failures, 10))
                s.retry_at = self.clock() + delay
                log.warning("study news not delivered, will retry",
                            extra={"study_uid": s.uid, "error": f"{type(err).__name__}: {err}"[:300], "retry_in_s": delay})
            finally:
                s.busy = False

    async def _tell(self, s: _Study, kind: EventKind, info: StudyInfo, control_id: str) -> None:
        rec = s.record
        assert rec is not None
        at = datetime.fromtimestamp(rec.first_received if kind == EventKind.IMAGES_ARRIVING else s.last_received, UTC)
        # The images' patient goes with the counts: the order refuses another patient's study.
        info = info.model_copy(update={"patient_id": rec.patient_id, "patient_issuer": rec.patient_issuer,
                                       "archive_queue": self.archive_queue})
        event = OrderEvent(kind=kind, source=EventSource.DICOM, control_id=control_id, at=at, study=info)
        accession = rec.target_accession or await self._announced_by(s.uid)
        if accession:
            try:
                await self.service.send_event(accession, event)
            except OrderNotFound:
                reason = f"no order with accession {accession}"
            except EventRejected as err:
                reason = f"order {accession} refused the images: {err}"
            else:
                log.info("study news delivered", extra={"study_uid": s.uid, "kind": kind.value, "accession": accession,
                                                        "instances": info.instance_count})
                if rec.unmatched:
                    await self._close_unmatched(s, accession)
                return
        else:
            reason = "no accession number in the images"
            if self._find_by_study_uid is not None:
                reason += ", and no order announced their Study Instance UID"
        await self._unmatched(s, kind, info, event, reason)

    async def _announced_by(self, study_uid: str) -> str:
        """Images without an accession: the order that announced their Study Instance UID (ZDS-1 /
        IPC-3 / the worklist's StudyInstanceUID), if any."""
        if self._find_by_study_uid is None:
            return ""
        return await self._find_by_study_uid(study_uid) or ""

    async def _unmatched(self, s: _Study, kind: EventKind, info: StudyInfo, event: OrderEvent, reason: str) -> None:
        rec = s.record
        assert rec is not None
        details = {
            "accession": rec.accession,
            "patient_id": rec.patient_id,
            "patient_issuer": rec.patient_issuer,
            "patient_name": rec.patient_name,
            "study_date": rec.study_date,
            "calling_ae": rec.calling_ae,
            "modality": info.modality,
            "series_count": info.series_count,
            "instance_count": info.instance_count,
            "archive_queue": self.archive_queue,  # an operator's link sends the order here to archive
        }
        item = await self._record(UnmatchedKind.STUDY.value, s.uid, details, reason)
        if not rec.unmatched:
            await asyncio.to_thread(self.spool.save_progress, s.uid, unmatched=True)
            s.record = rec = replace(rec, unmatched=True)
            log.info("unmatched study recorded", extra={"study_uid": s.uid, "instances": info.instance_count})
        linked = item.linked_accession if item.resolved else ""
        if linked and linked != rec.target_accession:
            # An operator linked the study meanwhile: from now on its news goes to that order.
            await asyncio.to_thread(self.spool.save_progress, s.uid, linked_accession=linked)
            s.record = replace(rec, linked_accession=linked)
            await self.service.send_event(linked, event)

    async def _close_unmatched(self, s: _Study, accession: str) -> None:
        # The order arrived after its images (or was linked): the exception is settled.
        rec = s.record
        assert rec is not None
        if not rec.linked_accession:
            with contextlib.suppress(EventRejected):
                await self._resolve(UnmatchedKind.STUDY.value, s.uid, accession, "order matched by accession after the images arrived")
        await asyncio.to_thread(self.spool.save_progress, s.uid, unmatched=False)
        s.record = replace(rec, unmatched=False)

    async def _record_in_temporal(self, kind: str, key: str, details: dict[str, Any], reason: str) -> UnmatchedItem:
        return await record_unmatched(self.service.client, kind, key, details, reason=reason,
                                      task_queue=self.service.task_queue,
                                      rpc_timeout_s=self.service.rpc_timeout.total_seconds())

    async def _resolve_in_temporal(self, kind: str, key: str, accession: str, note: str) -> UnmatchedItem:
        return await resolve_unmatched(self.service.client, kind, key, accession, note,
                                       rpc_timeout_s=self.service.rpc_timeout.total_seconds())
