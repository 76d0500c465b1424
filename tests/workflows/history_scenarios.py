"""Record workflow histories of representative orders for the replay test.

Run `python -m tests.workflows.history_scenarios` after an intentional, compatible workflow
change to refresh `tests/workflows/histories/`; never regenerate to silence a replay failure:
that failure means in-flight orders would break.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from domain import definitions as d
from domain.definitions import EventSource, ReportStatus
from domain.order import EventKind, OperatorAction, OrderPolicy, StepRequest, StepResult
from radflow.devstack import DevServer, free_port
from radflow.ordering import EventRejected, OrderService
from tests.factories import event, make_order, report, stable_study
from workflows.allocator import AccessionAllocatorWorkflow
from workflows.order import ImagingOrderWorkflow
from workflows.order_index import OrderIndexWorkflow

HISTORIES = Path(__file__).parent / "histories"
_fail_first = {"n": 0}


@activity.defn(name="deliver_report_hl7")
async def _deliver(req: StepRequest) -> StepResult:
    if req.accession.startswith("STUCK") and _fail_first["n"] < 2:
        _fail_first["n"] += 1
        raise ApplicationError("consumer down", type="ConnectionRefused")
    return StepResult(outcome="delivered")


async def _wait_status(svc: OrderService, acc: str, status: str) -> None:
    for _ in range(200):
        if (await svc.get_state(acc)).status.value == status:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{acc} never reached {status}")


async def scenarios(svc: OrderService) -> list[str]:
    done: list[str] = []
    # 1. Happy path with images, prelim, final, delivered.
    o = make_order(accession="HAPPY" + uuid.uuid4().hex[:6].upper())
    await svc.start_order(o, EventSource.HL7, "NW-1")
    await svc.send_event(o.accession, event(EventKind.PROCEDURE_STARTED, source=EventSource.DICOM))
    await svc.send_event(o.accession, event(EventKind.STUDY_STABLE, study=stable_study(), source=EventSource.DICOM))
    await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.PRELIMINARY)))
    await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL, "final")))
    await _wait_status(svc, o.accession, "DELIVERED")
    await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.CORRECTED, "corrected")))
    await _wait_status(svc, o.accession, "DELIVERED")
    done.append(o.accession)
    # 2. Unscheduled, scheduled by API, cancelled, then a refused report.
    o = make_order(accession="CANCEL" + uuid.uuid4().hex[:6].upper(), scheduled=False)
    await svc.start_order(o, EventSource.HL7, "NW-2")
    sched = make_order().schedule
    await svc.send_event(o.accession, event(EventKind.SCHEDULE, schedule=sched, source=EventSource.API))
    await svc.send_event(o.accession, event(EventKind.CANCEL, reason="test"))
    try:
        await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    except EventRejected:
        pass
    done.append(o.accession)
    # 3. Stuck delivery -> NEEDS_ATTENTION -> operator retry -> delivered; merge on the way.
    o = make_order(accession="STUCK" + uuid.uuid4().hex[:6].upper(), mrn="OLD1")
    await svc.start_order(o, EventSource.HL7, "NW-3")
    merged = o.patient.model_copy(update={"mrn": "NEW1"})
    from domain.order import PatientKey

    await svc.send_event(o.accession, event(EventKind.PATIENT_MERGED, patient=merged, merged_from=PatientKey(mrn="OLD1")))
    await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    await _wait_status(svc, o.accession, "NEEDS_ATTENTION")
    await svc.operator_action(o.accession, OperatorAction(action="retry"))
    await _wait_status(svc, o.accession, "DELIVERED")
    done.append(o.accession)
    return done


async def main() -> None:
    server = DevServer(port=free_port(), ui_port=None)
    await server.start()
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        tq = "history-" + uuid.uuid4().hex[:6]
        svc = OrderService(client, task_queue=tq, policy=OrderPolicy(step_max_attempts=2, step_initial_interval_s=0.1))
        async with Worker(client, task_queue=tq, workflows=[ImagingOrderWorkflow, AccessionAllocatorWorkflow, OrderIndexWorkflow], activities=[_deliver]):
            accessions = await scenarios(svc)
            await svc.allocate_accession("PLACER-1^EHR")
            HISTORIES.mkdir(exist_ok=True)
            for acc in accessions:
                history = await svc.handle(acc).fetch_history()
                name = acc.rstrip("0123456789ABCDEF") or acc
                (HISTORIES / f"order_{name.lower()}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
            history = await client.get_workflow_handle(d.allocator_workflow_id(tq)).fetch_history()
            (HISTORIES / "allocator.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
