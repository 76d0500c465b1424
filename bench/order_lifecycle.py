"""History events and workflow tasks per order for one full lifecycle (issue 9 benchmark).

Each order goes ORM NW (start) -> on the worklist -> MPPS IN PROGRESS -> first image ->
2,000 instances stable -> MPPS COMPLETED (2,000 referenced) -> ORU P -> ORU F -> delivered
to a real HL7 receiver (MLLP, AA) and a real FHIR server (the Medplum-based test server),
with the real worker activities built from settings (worklist SQLite read model, FHIR sync
and report delivery, HL7 ORU delivery). The events are the ones the gateways send for that
story (one IMAGES_ARRIVING, one STUDY_STABLE with counts: history does not grow with the
instance count); no archive is configured (its lane answers "not_configured").

Counts cover every run of the workflow id (continue-as-new included): total history events
and WorkflowTaskCompleted events (= workflow tasks), medians over `--orders` orders. Run it
on the old and the new workflow code; `--baseline EVENTS,TASKS` prints the ratios against a
figure measured on the same machine (the README of bench/ records both).

    .venv/bin/python bench/order_lifecycle.py [--orders 5] [--baseline 100,16]

Measured here (docs/workflow.md "Benchmark"): v1 100 events / 16 tasks per order; v2 89 / 12.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402

from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus, order_workflow_id  # noqa: E402
from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack  # noqa: E402
from radflow.domain.order import EventKind, OrderEvent, Report, StudyInfo  # noqa: E402
from radflow.gateways.mllp import serve_mllp  # noqa: E402
from radflow.devstack import DevServer, free_port  # noqa: E402
from radflow.infra.settings import Settings  # noqa: E402
from radflow.service.wiring import order_service  # noqa: E402
from radflow.worker import build_worker  # noqa: E402
from tests.factories import make_order, new_accession  # noqa: E402
from tests.fhir_server.fixture import FhirTestServer  # noqa: E402

INSTANCES = 2000


async def ehr_ack(payload: bytes) -> bytes:
    return build_ack(AckHeader.from_text(payload.decode("utf-8")), AckCode.AA, application="EHR").encode()


async def one_order(service, n: int) -> str:
    order = make_order(new_accession("BENCH"), mrn=f"BMRN{n}")
    order.study_instance_uid = f"1.2.826.0.1.3680043.9.7777.{n}.{datetime.now(UTC).timestamp():.0f}"
    acc = order.accession
    uid = order.study_instance_uid
    await service.start_order(order, EventSource.HL7, f"NW-{acc}")
    study = StudyInfo(study_instance_uid=uid, series_count=4, instance_count=INSTANCES, modality="CT", stable=True)

    def ev(kind: EventKind, cid: str, **kw) -> OrderEvent:
        return OrderEvent(kind=kind, source=EventSource.DICOM if "DICOM" in cid else EventSource.HL7,
                          control_id=f"{cid}-{acc}", **kw)

    await service.send_event(acc, ev(EventKind.PROCEDURE_STARTED, "DICOM-mpps-create"))
    await service.send_event(acc, ev(EventKind.IMAGES_ARRIVING, "DICOM-first",
                                     study=study.model_copy(update={"instance_count": 1, "stable": False})))
    await service.send_event(acc, ev(EventKind.STUDY_STABLE, "DICOM-stable", study=study))
    await service.send_event(acc, ev(EventKind.PROCEDURE_COMPLETED, "DICOM-mpps-set",
                                     study=study.model_copy(update={"expected_instance_count": INSTANCES})))
    await _wait(service, acc, lambda s: s.status not in (OrderStatus.IN_PROGRESS, OrderStatus.SCHEDULED))
    await service.send_event(acc, ev(EventKind.REPORT, "ORU-P",
                                     report=Report(status=ReportStatus.PRELIMINARY, text="prelim")))
    await service.send_event(acc, ev(EventKind.REPORT, "ORU-F", report=Report(status=ReportStatus.FINAL, text="final")))
    await _wait(service, acc, lambda s: s.status == OrderStatus.DELIVERED)
    return acc


async def _wait(service, acc: str, check, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end:
        state = await service.get_state(acc)
        if check(state):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{acc}: status {state.status}, deliveries {state.deliveries}, last {[(t.kind, t.summary) for t in state.timeline[-5:]]}")


KINDS: dict[str, int] = {}


# Events that Temporal Cloud bills as one action each (its published definition; queries,
# which leave no history, are not counted here). Local activities: one per workflow task that ran any.
ACTION_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
    EventType.EVENT_TYPE_TIMER_STARTED,
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
}


async def count(client: Client, acc: str) -> dict[str, int]:
    """Per-order cost over every run of the order (follows continue-as-new): history events,
    workflow tasks, activities (scheduled + local) and Temporal actions."""
    cost = {"events": 0, "tasks": 0, "activities": 0, "actions": 0}
    KINDS.clear()
    handle = client.get_workflow_handle(order_workflow_id(acc))
    desc = await handle.describe()
    run_id: str | None = desc.raw_description.workflow_execution_info.first_run_id or None
    seen = set()
    while run_id and run_id not in seen:
        seen.add(run_id)
        history = await client.get_workflow_handle(order_workflow_id(acc), run_id=run_id).fetch_history()
        nxt = None
        local_in_task = False
        for e in history.events:
            cost["events"] += 1
            kind = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
            KINDS[kind] = KINDS.get(kind, 0) + 1
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                cost["tasks"] += 1
                local_in_task = False
            cost["actions"] += e.event_type in ACTION_EVENTS
            cost["activities"] += e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and e.marker_recorded_event_attributes.marker_name == "core_local_activity":
                cost["activities"] += 1
                cost["actions"] += not local_in_task
                local_in_task = True
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                nxt = e.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        run_id = nxt
    return cost


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--baseline", default="", help="EVENTS,TASKS measured on the old code")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        server = DevServer(port=free_port(), ui_port=None)
        await server.start()
        fhir = FhirTestServer()
        await fhir.start()
        ehr = await serve_mllp(ehr_ack, "127.0.0.1", 0)
        try:
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            settings = Settings(
                task_queue="bench-lifecycle", data_dir=Path(tmp), fhir_base_url=fhir.base_url,
                ehr_mllp_host="127.0.0.1", ehr_mllp_port=ehr.sockets[0].getsockname()[1],
                sync_consumers=["worklist", "fhir"], report_consumers=["hl7", "fhir"],
                acquisition_consumers=["archive"], worker_spool_archive=True, _env_file=None,
            )
            service = order_service(client, settings)
            async with build_worker(client, settings, task_queue=settings.task_queue):
                figures = []
                for n in range(args.orders):
                    acc = await one_order(service, n)
                    figures.append(await count(client, acc))
            events = statistics.median(f["events"] for f in figures)
            tasks = statistics.median(f["tasks"] for f in figures)
            print(f"full lifecycle, {args.orders} orders: history events per order {events:g}, "
                  f"workflow tasks per order {tasks:g} (all: {[(f['events'], f['tasks']) for f in figures]})")
            print(f"activities per order {statistics.median(f['activities'] for f in figures):g} (local included), "
                  f"Temporal actions per order {statistics.median(f['actions'] for f in figures):g}")
            print("last order by event type: " + ", ".join(f"{k}={v}" for k, v in sorted(KINDS.items(), key=lambda x: -x[1])))
            if args.baseline:
                base_events, base_tasks = (float(x) for x in args.baseline.split(","))
                print(f"ratio vs baseline {args.baseline}: events {events / base_events:.2f}, tasks {tasks / base_tasks:.2f}"
                      " (goal < 1)")
        finally:
            ehr.close()
            fhir.close()
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
