"""Record the history of an order archived on its DICOM gateway's own task queue (issue 12.1).

`python -m tests.workflows.history_gateway_archive` writes `histories/gwq_order_gateway_archive.json`:
images announced by a gateway (StudyInfo.archive_queue set), archive_study scheduled on that
queue under `workflow.patched("archive-on-gateway-queue")`, a late series archived there again,
then the report. The replay test replays it with every other history. Fakes under the real
activity names, as in history_scenarios.py; the archive fake only runs on the gateway's queue.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import EventKind, OrderPolicy
from radflow.devstack import DevServer, free_port
from radflow.service.ordering import OrderService
from radflow.service.temporal import DATA_CONVERTER
from tests.factories import event, make_order, report, stable_study
from tests.workflows.history_scenarios import (
    HISTORIES,
    _archive,
    _fhir_report,
    _fhir_sync,
    _hl7,
    _save_runs,
    _wait,
    _worklist,
)
from radflow.workflows.allocator import AccessionAllocatorWorkflow
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow

NAME = "gwq_order_gateway_archive"


async def main() -> None:
    server = DevServer(port=free_port(), ui_port=None)
    await server.start()
    try:
        client = await Client.connect(server.address, data_converter=DATA_CONVERTER)
        tq = "history-" + uuid.uuid4().hex[:6]
        gateway_queue = d.gateway_task_queue(tq, "gw-1")
        policy = OrderPolicy(step_max_attempts=2, step_initial_interval_s=0.1, sync_consumers=["worklist"],
                             report_consumers=["hl7"], acquisition_consumers=["archive"])
        svc = OrderService(client, task_queue=tq, policy=policy)
        async with Worker(client, task_queue=tq, workflows=[ImagingOrderWorkflow, AccessionAllocatorWorkflow,
                                                             OrderIndexWorkflow],
                          activities=[_hl7, _fhir_report, _fhir_sync, _worklist]), \
                Worker(client, task_queue=gateway_queue, activities=[_archive]):
            o = make_order(accession="GWQ" + uuid.uuid4().hex[:6].upper())
            await svc.start_order(o, EventSource.HL7, "NW-1")
            study = stable_study().model_copy(update={"archive_queue": gateway_queue})
            await svc.send_event(o.accession, event(EventKind.STUDY_STABLE, study=study, source=EventSource.DICOM))
            await _wait(svc, o.accession, lambda s: s.status.value == "ACQUIRED", "ACQUIRED")
            late = study.model_copy(update={"instance_count": study.instance_count + 5})
            await svc.send_event(o.accession, event(EventKind.STUDY_STABLE, study=late, source=EventSource.DICOM))
            await _wait(svc, o.accession, lambda s: s.lanes["archive"].acquired_count == late.instance_count,
                        "late instances archived")
            await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL, "final")))
            await _wait(svc, o.accession, lambda s: s.status.value == "DELIVERED", "DELIVERED")
            await asyncio.sleep(1.0)  # visibility lists the run
            await _save_runs(client, d.order_workflow_id(o.accession), NAME)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
