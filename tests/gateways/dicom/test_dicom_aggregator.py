"""Aggregator timing and routing with a fake clock and a fake OrderService (no Temporal)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from radflow.domain.definitions import OrderStatus
from radflow.domain.order import EventKind, EventResult, OrderEvent
from radflow.domain.unmatched import UnmatchedItem
from radflow.gateways.dicom.aggregator import StudyAggregator
from radflow.gateways.dicom.spool import InstanceHeader, Spool
from radflow.service.ordering import EventRejected, OrderNotFound, TemporalUnavailable

STABLE = 10.0


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


class FakeService:
    """Records events per accession; knows only the accessions it was given."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.sent: list[tuple[str, OrderEvent]] = []
        self.down = False
        self.refuse: set[str] = set()

    async def send_event(self, accession: str, event: OrderEvent) -> EventResult:
        if self.down:
            raise TemporalUnavailable("down")
        if accession not in self.known:
            raise OrderNotFound(f"unknown order {accession}")
        if accession in self.refuse:
            raise EventRejected("images for a cancelled order")
        self.sent.append((accession, event))
        return EventResult(accession=accession, status=OrderStatus.IN_PROGRESS, changed=True)

    def kinds(self) -> list[tuple[str, EventKind, int]]:
        return [(a, e.kind, e.study.instance_count if e.study else 0) for a, e in self.sent]


class FakeUnmatched:
    def __init__(self) -> None:
        self.items: dict[str, UnmatchedItem] = {}
        self.resolved: list[tuple[str, str]] = []

    async def record(self, kind: str, key: str, details: dict[str, Any], reason: str) -> UnmatchedItem:
        now = datetime.now(UTC)
        item = self.items.get(key) or UnmatchedItem(kind=kind, key=key, first_seen=now, last_seen=now)
        if not item.resolved:
            item = item.model_copy(update={"details": {**item.details, **details}, "reason": reason, "notes": item.notes + 1})
        self.items[key] = item
        return item

    async def resolve(self, kind: str, key: str, accession: str, note: str) -> UnmatchedItem:
        self.resolved.append((key, accession))
        item = self.items[key].model_copy(update={"resolved_at": datetime.now(UTC), "linked_accession": accession})
        self.items[key] = item
        return item

    def link(self, key: str, accession: str) -> None:
        self.items[key] = self.items[key].model_copy(update={"resolved_at": datetime.now(UTC), "linked_accession": accession})


def make(tmp_path: Path, known: set[str]) -> tuple[StudyAggregator, Spool, FakeService, FakeUnmatched, Clock]:
    clock = Clock()
    spool = Spool(tmp_path, fsync=False, clock=clock)
    service = FakeService(known)
    unmatched = FakeUnmatched()
    agg = StudyAggregator(spool, service, stable_age_s=STABLE, clock=clock,  # type: ignore[arg-type]
                          record=unmatched.record, resolve=unmatched.resolve)
    return agg, spool, service, unmatched, clock


def receive(agg: StudyAggregator, spool: Spool, study: str, n: int, *, accession: str = "ACC1", start: int = 0,
            series: str = "") -> None:
    for i in range(start, start + n):
        h = InstanceHeader(sop_instance_uid=f"{study}.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                           transfer_syntax="1.2.840.10008.1.2.1", study_uid=study, series_uid=series or f"{study}.9",
                           accession=accession, modality="CT")
        spool.store(h, b"x")
        agg.instance_received(study, spool.clock())


async def test_one_arriving_then_one_stable_after_the_quiet_period(tmp_path: Path) -> None:
    agg, spool, service, _, clock = make(tmp_path, {"ACC1"})
    receive(agg, spool, "1.2.3", 1)
    await agg.run_once()
    assert service.kinds() == [("ACC1", EventKind.IMAGES_ARRIVING, 1)]
    for _ in range(5):  # a steady stream shorter than the stable age apart: nothing new
        clock.t += STABLE / 2
        receive(agg, spool, "1.2.3", 400, start=spool.instance_count("1.2.3"))
        await agg.run_once()
    assert len(service.sent) == 1
    clock.t += STABLE - 0.1
    await agg.run_once()
    assert len(service.sent) == 1, "stable before the quiet period elapsed"
    clock.t += 0.2
    await agg.run_once()
    await agg.run_once()
    assert service.kinds() == [("ACC1", EventKind.IMAGES_ARRIVING, 1), ("ACC1", EventKind.STUDY_STABLE, 2001)]
    _, stable = service.sent[1]
    assert stable.control_id == "1.2.3:stable:2001" and stable.study.stable and stable.study.series_count == 1
    assert service.sent[0][1].control_id == "1.2.3:arriving"


async def test_late_instances_give_a_second_stable_and_resends_do_not(tmp_path: Path) -> None:
    agg, spool, service, _, clock = make(tmp_path, {"ACC1"})
    receive(agg, spool, "1.2.3", 3)
    await agg.run_once()
    clock.t += STABLE
    await agg.run_once()
    receive(agg, spool, "1.2.3", 3)  # the modality resends the same instances: no news
    clock.t += STABLE
    await agg.run_once()
    receive(agg, spool, "1.2.3", 2, start=3, series="1.2.3.8")  # a late series
    clock.t += STABLE
    await agg.run_once()
    assert [k for _, k, _ in service.kinds()] == [EventKind.IMAGES_ARRIVING, EventKind.STUDY_STABLE, EventKind.STUDY_STABLE]
    assert service.sent[-1][1].study.instance_count == 5 and service.sent[-1][1].study.series_count == 2


async def test_temporal_down_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    agg, spool, service, _, clock = make(tmp_path, {"ACC1"})
    service.down = True
    receive(agg, spool, "1.2.3", 4)
    await agg.run_once()
    clock.t += STABLE
    await agg.run_once()
    assert service.sent == []
    service.down = False
    clock.t += 60
    await agg.run_once()
    assert [k for _, k, _ in service.kinds()] == [EventKind.IMAGES_ARRIVING, EventKind.STUDY_STABLE]


async def test_restart_resumes_from_the_spool_with_the_same_control_ids(tmp_path: Path) -> None:
    agg, spool, service, _, clock = make(tmp_path, {"ACC1"})
    receive(agg, spool, "1.2.3", 5)
    await agg.run_once()  # arriving told, stable not yet: then the process dies
    assert service.kinds() == [("ACC1", EventKind.IMAGES_ARRIVING, 5)]

    restarted = StudyAggregator(spool, service, stable_age_s=STABLE, clock=clock)  # type: ignore[arg-type]
    await restarted.recover()
    assert restarted.pending() == ["1.2.3"]
    clock.t += STABLE
    await restarted.run_once()
    assert service.kinds()[1:] == [("ACC1", EventKind.STUDY_STABLE, 5)]
    assert service.sent[1][1].control_id == "1.2.3:stable:5"

    again = StudyAggregator(spool, service, stable_age_s=STABLE, clock=clock)  # type: ignore[arg-type]
    await again.recover()
    await again.run_once()
    assert again.pending() == [] and len(service.sent) == 2


async def test_unknown_accession_becomes_unmatched_then_follows_the_link(tmp_path: Path) -> None:
    agg, spool, service, unmatched, clock = make(tmp_path, {"REAL"})
    receive(agg, spool, "7.7", 3, accession="NOPE")
    await agg.run_once()
    item = unmatched.items["7.7"]
    assert "no order with accession NOPE" in item.reason and item.details["instance_count"] == 3
    assert item.details["accession"] == "NOPE" and service.sent == []
    assert spool.study("7.7").unmatched

    unmatched.link("7.7", "REAL")  # the operator links it (API)
    receive(agg, spool, "7.7", 2, start=3, accession="NOPE")
    clock.t += STABLE
    await agg.run_once()
    assert service.kinds() == [("REAL", EventKind.STUDY_STABLE, 5)]
    assert spool.study("7.7").linked_accession == "REAL"
    receive(agg, spool, "7.7", 1, start=5, accession="NOPE")
    clock.t += STABLE
    await agg.run_once()
    assert service.kinds()[-1] == ("REAL", EventKind.STUDY_STABLE, 6)  # straight to the linked order now


async def test_images_without_accession_and_images_before_their_order(tmp_path: Path) -> None:
    agg, spool, service, unmatched, clock = make(tmp_path, set())
    receive(agg, spool, "8.8", 2, accession="")
    receive(agg, spool, "6.6", 2, accession="LATE")
    await agg.run_once()
    assert unmatched.items["8.8"].reason == "no accession number in the images"
    assert "LATE" in unmatched.items["6.6"].reason
    service.known.add("LATE")  # the ORM arrives after the images
    clock.t += STABLE
    await agg.run_once()
    assert service.kinds() == [("LATE", EventKind.STUDY_STABLE, 2)]
    assert unmatched.resolved == [("6.6", "LATE")] and not spool.study("6.6").unmatched


async def test_refused_images_are_kept_as_unmatched(tmp_path: Path) -> None:
    agg, spool, service, unmatched, _ = make(tmp_path, {"ACC1"})
    service.refuse.add("ACC1")
    receive(agg, spool, "4.4", 1)
    await agg.run_once()
    assert "refused" in unmatched.items["4.4"].reason


@pytest.mark.parametrize("studies", [3])
async def test_studies_are_independent(tmp_path: Path, studies: int) -> None:
    agg, spool, service, _, clock = make(tmp_path, {f"A{i}" for i in range(studies)})
    for i in range(studies):
        receive(agg, spool, f"9.{i}", i + 1, accession=f"A{i}")
    await agg.run_once()
    clock.t += STABLE
    await agg.run_once()
    stable = {a: n for a, k, n in service.kinds() if k == EventKind.STUDY_STABLE}
    assert stable == {"A0": 1, "A1": 2, "A2": 3}


async def test_study_events_and_unmatched_items_name_this_gateways_queue(tmp_path: Path) -> None:
    """Issue 12.1: the order learns from the study news which queue holds the spool (archive_study runs there)."""
    agg, spool, service, unmatched, clock = make(tmp_path, {"ACC1"})
    agg.archive_queue = "radflow-orders-dicom-gw-a"
    receive(agg, spool, "1.2.3", 2)
    receive(agg, spool, "1.2.4", 1, accession="NOPE")
    await agg.run_once()
    clock.t += STABLE + 0.1
    await agg.run_once()
    assert [e.study.archive_queue for _, e in service.sent] == ["radflow-orders-dicom-gw-a"] * 2
    assert unmatched.items["1.2.4"].details["archive_queue"] == "radflow-orders-dicom-gw-a"
