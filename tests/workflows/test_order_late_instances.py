"""Instances arriving after ACQUIRED are archived too (acquisition steps re-run for the new count)."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.order import EventKind, OrderPolicy, StepRequest, StepResult
from radflow.service.ordering import OrderService
from tests.factories import event, make_order, stable_study
from tests.waiting import eventually
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow

archived: list[tuple[str, int]] = []


@activity.defn(name="archive_study")
async def fake_archive(req: StepRequest) -> StepResult:
    archived.append((req.accession, req.state.study.instance_count))
    return StepResult(outcome="delivered", detail=f"archive confirmed {req.state.study.instance_count} instances")


async def test_late_instances_after_acquired_are_archived(client: Client, task_queue: str) -> None:
    svc = OrderService(client, task_queue=task_queue,
                       policy=OrderPolicy(acquisition_consumers=["archive"], report_consumers=[], step_initial_interval_s=0.1))
    order = make_order()
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, OrderIndexWorkflow], activities=[fake_archive]):
        await svc.start_order(order, EventSource.HL7, "ORM1")
        await svc.send_event(order.accession, event(EventKind.STUDY_STABLE, study=stable_study(instances=16), source=EventSource.DICOM))
        state = await eventually(lambda: svc.get_state(order.accession), lambda s: s.status == OrderStatus.ACQUIRED)
        assert state.status == OrderStatus.ACQUIRED
        late = await svc.send_event(order.accession, event(EventKind.STUDY_STABLE, study=stable_study(instances=30),
                                                           source=EventSource.DICOM))
        assert late.status == OrderStatus.ACQUIRED
        state = await eventually(lambda: svc.get_state(order.accession),
                                 lambda s: s.deliveries.get("acquisition:archive") == "n30:delivered")
        resent = await svc.send_event(order.accession, event(EventKind.STUDY_STABLE, study=stable_study(instances=30),
                                                             source=EventSource.DICOM))
        assert resent.status == OrderStatus.ACQUIRED
        final = await svc.get_state(order.accession)
    assert state.deliveries["acquisition:archive"] == "n30:delivered" and state.status == OrderStatus.ACQUIRED
    assert [n for acc, n in archived if acc == order.accession] == [16, 30]  # the same count is not archived twice
    assert final.study.instance_count == 30
