"""Order workflow logic on the real dev server, with delivery activities faked by name."""

from __future__ import annotations

import asyncio

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus
from radflow.domain.order import EventKind, OrderPolicy, Schedule, StepRequest, StepResult
from radflow.service.ordering import EventRejected, OrderNotFound, OrderService
from tests.factories import event, make_order, report, stable_study
from radflow.workflows.allocator import AccessionAllocatorWorkflow
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow

delivered: list[StepRequest] = []


@activity.defn(name="deliver_report_hl7")
async def fake_hl7_delivery(req: StepRequest) -> StepResult:
    delivered.append(req)
    return StepResult(outcome="delivered", detail="fake consumer")


async def _service(client: Client, task_queue: str) -> OrderService:
    return OrderService(client, task_queue=task_queue, policy=OrderPolicy(step_initial_interval_s=0.1))


@pytest.fixture
async def worker(client: Client, task_queue: str):
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, AccessionAllocatorWorkflow, OrderIndexWorkflow],
                      activities=[fake_hl7_delivery]) as w:
        yield w


async def test_lifecycle_scheduled_to_delivered(client: Client, task_queue: str, worker: Worker) -> None:
    svc = await _service(client, task_queue)
    order = make_order()
    started = await svc.start_order(order, EventSource.HL7, "MSG1")
    assert started.created and started.status == OrderStatus.SCHEDULED
    again = await svc.start_order(order, EventSource.HL7, "MSG1b")
    assert not again.created

    await svc.send_event(order.accession, event(EventKind.PROCEDURE_STARTED, source=EventSource.DICOM))
    res = await svc.send_event(order.accession, event(EventKind.STUDY_STABLE, study=stable_study(), source=EventSource.DICOM))
    assert res.status == OrderStatus.ACQUIRED
    res = await svc.send_event(order.accession, event(EventKind.REPORT, report=report(ReportStatus.PRELIMINARY)))
    assert res.status == OrderStatus.REPORTED
    await svc.send_event(order.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL, "Final text")))

    for _ in range(100):
        state = await svc.get_state(order.accession)
        if state.status == OrderStatus.DELIVERED:
            break
        await asyncio.sleep(0.05)
    assert state.status == OrderStatus.DELIVERED
    assert state.report and state.report.status == ReportStatus.FINAL and state.report.version == 2
    kinds = [e.kind for e in state.timeline]
    assert kinds[0] == "NEW_ORDER" and "DELIVERED" in kinds
    assert any(r.accession == order.accession and r.state.report and r.state.report.text == "Final text" for r in delivered)


async def test_invalid_transition_is_recorded_not_applied(client: Client, task_queue: str, worker: Worker) -> None:
    svc = await _service(client, task_queue)
    order = make_order()
    await svc.start_order(order, EventSource.HL7)
    await svc.send_event(order.accession, event(EventKind.CANCEL, reason="patient declined"))
    with pytest.raises(EventRejected) as err:
        await svc.send_event(order.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    assert "cancelled" in str(err.value)
    state = await svc.get_state(order.accession)
    assert state.status == OrderStatus.CANCELLED and state.report is None
    assert state.timeline[-1].exception and state.exceptions == 1


async def test_resent_control_id_changes_nothing(client: Client, task_queue: str, worker: Worker) -> None:
    svc = await _service(client, task_queue)
    order = make_order(scheduled=False)
    await svc.start_order(order, EventSource.HL7)
    sched = Schedule(station_ae="MR1", modality="MR", start=order.requested_at or make_order().schedule.start)
    first = await svc.send_event(order.accession, event(EventKind.SCHEDULE, "C-1", schedule=sched, source=EventSource.API))
    assert first.changed and first.status == OrderStatus.SCHEDULED
    again = await svc.send_event(order.accession, event(EventKind.SCHEDULE, "C-1", schedule=sched, source=EventSource.API))
    assert again.changed == first.changed  # Temporal returned the first outcome for the same update id
    timeline = await svc.get_timeline(order.accession)
    assert [e.kind for e in timeline].count("SCHEDULE") == 1


async def test_unknown_order_is_not_found(client: Client, task_queue: str, worker: Worker) -> None:
    svc = await _service(client, task_queue)
    with pytest.raises(OrderNotFound):
        await svc.send_event("NOPE-404", event(EventKind.CANCEL))


async def test_accession_allocation_is_unique_and_idempotent(client: Client, task_queue: str, worker: Worker) -> None:
    svc = OrderService(client, task_queue=task_queue, accession_prefix="ZZ")
    a = await svc.allocate_accession(f"P-{task_queue}-1^EHR")
    b = await svc.allocate_accession(f"P-{task_queue}-2^EHR")
    a2 = await svc.allocate_accession(f"P-{task_queue}-1^EHR")
    assert a == a2 and a != b and a.startswith("ZZ")
    assert await svc.accession_for_placer(f"P-{task_queue}-1", f"P-{task_queue}-1^EHR") == a


synced: list[str] = []
synced_kinds: dict[str, list[list[str]]] = {}


@activity.defn(name="sync_worklist")
async def fake_sync(req: StepRequest) -> StepResult:
    synced.append(f"{req.accession}:{req.milestone}")
    synced_kinds.setdefault(req.accession, []).append(list(req.milestones))
    return StepResult(outcome="delivered")


async def test_mirrors_hear_only_what_they_mirror(client: Client, task_queue: str) -> None:
    """Study counts before acquisition are not mirrored: a study costs no sync per STUDY_STABLE.

    The lane coalesces what changed while it was busy into one sync of the latest state, so
    NEW_ORDER and PROCEDURE_STARTED may arrive as one call that names both."""
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, AccessionAllocatorWorkflow, OrderIndexWorkflow],
                      activities=[fake_hl7_delivery, fake_sync]):
        svc = OrderService(client, task_queue=task_queue, policy=OrderPolicy(sync_consumers=["worklist"]))
        order = make_order()
        order.study_instance_uid = stable_study().study_instance_uid  # known from the order
        await svc.start_order(order, EventSource.HL7)
        acc = order.accession
        await svc.send_event(acc, event(EventKind.PROCEDURE_STARTED, source=EventSource.DICOM))
        await svc.send_event(acc, event(EventKind.PROCEDURE_COMPLETED, source=EventSource.DICOM,
                                        study=stable_study(instances=0).model_copy(update={"expected_instance_count": 50})))
        for n in (10, 30):  # counts grow, not complete yet: nothing to mirror
            await svc.send_event(acc, event(EventKind.STUDY_STABLE, study=stable_study(instances=n), source=EventSource.DICOM))
        await svc.send_event(acc, event(EventKind.STUDY_STABLE, study=stable_study(instances=50), source=EventSource.DICOM))
        for _ in range(100):
            if f"{acc}:ACQUISITION_CONFIRMED" in synced:
                break
            await asyncio.sleep(0.05)
        mine = [m.split(":", 1)[1] for m in synced if m.startswith(acc)]
        assert mine[-1] == "ACQUISITION_CONFIRMED" and 2 <= len(mine) <= 3, mine
        kinds = [k for call in synced_kinds[acc] for k in call]
        assert kinds == ["NEW_ORDER", "PROCEDURE_STARTED", "ACQUISITION_CONFIRMED"], synced_kinds[acc]
