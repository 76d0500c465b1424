"""Record workflow histories of representative orders for the replay test.

Run `python -m tests.workflows.history_scenarios PREFIX` after a workflow change guarded by
`workflow.patched(...)` to record the new behaviour as `PREFIX_*` files in
`tests/workflows/histories/` (v2: before any patch; v2p1: with "lanes-fewer-activities";
v2p2: with "ui-search-attributes", the operator argument read by hand, a refused signal; v2p3: with
"read-model-memo", the order's memo as its read model; v2p4: baseline starts, no patch markers),
keeping the older files: they are what in-flight orders look like. Never regenerate to
silence a replay failure: that failure means in-flight orders would break. The `v1_*` files
are histories of ImagingOrder v1 (workflows/order_v1.py).

Every path of ImagingOrder v2 has a history here: lanes (worklist, fhir, hl7, archive),
amendments (corrected report), NEEDS_ATTENTION with retry and skip, radflow and Temporal
cancel, expiry, continue-as-new, unmatched items and the allocator. Consumers are fakes
registered under the real activity names (the workflow only sees their results).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import EventKind, OperatorAction, OrderPolicy, OrderState, Patient, PatientKey, StepRequest, StepResult
from radflow.activities.order_index import prune_order_index
from radflow.devstack import DevServer, free_port
from radflow.service.ordering import EventRejected, OrderService
from radflow.service.temporal import DATA_CONVERTER
from radflow.service.unmatched import record_unmatched, resolve_unmatched
from tests.factories import event, make_order, report, stable_study
from radflow.workflows.allocator import AccessionAllocatorWorkflow
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow
from radflow.workflows.unmatched import UnmatchedItemWorkflow

HISTORIES = Path(__file__).parent / "histories"
_failures: dict[str, int] = {}


def _flaky(req: StepRequest, consumer: str) -> None:
    """Orders whose accession starts with STUCK fail twice per consumer (hl7 and fhir), then work."""
    key = f"{req.accession}:{consumer}"
    if req.accession.startswith("STUCK") and _failures.get(key, 0) < 2:
        _failures[key] = _failures.get(key, 0) + 1
        raise ApplicationError(f"{consumer} down", type="ConnectionRefused")


@activity.defn(name="deliver_report_hl7")
async def _hl7(req: StepRequest) -> StepResult:
    _flaky(req, "hl7")
    return StepResult(outcome="delivered")


@activity.defn(name="deliver_report_fhir")
async def _fhir_report(req: StepRequest) -> StepResult:
    _flaky(req, "fhir")
    return StepResult(outcome="delivered", detail="DiagnosticReport/1")


@activity.defn(name="sync_fhir")
async def _fhir_sync(req: StepRequest) -> StepResult:
    return StepResult(outcome="delivered", detail="ServiceRequest/1")


@activity.defn(name="sync_worklist")
async def _worklist(req: StepRequest) -> StepResult:
    return StepResult(outcome="delivered")


@activity.defn(name="archive_study")
async def _archive(req: StepRequest) -> StepResult:
    activity.heartbeat(req.state.study.instance_count)
    return StepResult(outcome="delivered", detail=f"archive confirmed {req.state.study.instance_count} instances")


async def _wait(svc: OrderService, acc: str, check, what: str) -> OrderState:
    for _ in range(400):
        state = await svc.get_state(acc)
        if check(state):
            return state
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{acc} never reached {what}: {state.status} {state.lanes}")


def _acc(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:6].upper()


async def happy(svc: OrderService) -> str:
    """Every lane: worklist + fhir sync, archive, hl7 + fhir reports P/F, then a corrected report."""
    o = make_order(accession=_acc("HAPPY"))
    o.study_instance_uid = stable_study().study_instance_uid
    await svc.start_order(o, EventSource.HL7, "NW-1")
    await svc.send_event(o.accession, event(EventKind.PROCEDURE_STARTED, source=EventSource.DICOM))
    await svc.send_event(o.accession, event(EventKind.STUDY_STABLE, study=stable_study(), source=EventSource.DICOM))
    await _wait(svc, o.accession, lambda s: s.status.value == "ACQUIRED", "ACQUIRED")
    await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.PRELIMINARY)))
    await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL, "final")))
    await _wait(svc, o.accession, lambda s: s.status.value == "DELIVERED", "DELIVERED")
    await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.CORRECTED, "corrected")))
    await _wait(svc, o.accession, lambda s: s.status.value == "DELIVERED" and s.report.version == 3, "DELIVERED v3")
    return o.accession


async def cancel(svc: OrderService) -> str:
    """Unscheduled, scheduled by API, cancelled, a refused report."""
    o = make_order(accession=_acc("CANCEL"), scheduled=False)
    await svc.start_order(o, EventSource.HL7, "NW-2")
    await svc.send_event(o.accession, event(EventKind.SCHEDULE, schedule=make_order().schedule, source=EventSource.API))
    await svc.send_event(o.accession, event(EventKind.CANCEL, reason="test"))
    try:
        await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    except EventRejected:
        pass
    await _wait(svc, o.accession, lambda s: s.lanes["worklist"].mirror_version == s.mirror_version, "synced")
    return o.accession


async def stuck(svc: OrderService) -> str:
    """hl7 and fhir report lanes fail: operator retries hl7 (lane given), skips the rest (all lanes); a merge meanwhile."""
    o = make_order(accession=_acc("STUCK"), mrn="OLD1")
    await svc.start_order(o, EventSource.HL7, "NW-3")
    await svc.send_event(o.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    await _wait(svc, o.accession, lambda s: all(s.lanes[n].attention for n in ("hl7", "fhir")), "both lanes waiting")
    merged = Patient(mrn="NEW1", issuer="HOSP")
    await svc.send_event(o.accession, event(EventKind.PATIENT_MERGED, patient=merged, merged_from=PatientKey(mrn="OLD1")))
    # A mistyped signal from the Temporal UI (recorded as refused since v2p2), then the real decisions.
    await svc.handle(o.accession).signal(d.OPERATOR_SIGNAL, {"action": "retyr", "lane": "hl7"})
    await svc.operator_action(o.accession, OperatorAction(action="retry", lane="hl7"))
    await svc.operator_action(o.accession, OperatorAction(action="skip", note="sent by fax"))
    await _wait(svc, o.accession, lambda s: s.status.value == "DELIVERED", "DELIVERED")
    return o.accession


async def temporal_cancel(svc: OrderService) -> str:
    o = make_order(accession=_acc("TCANCEL"))
    await svc.start_order(o, EventSource.HL7, "NW-4")
    await svc.send_event(o.accession, event(EventKind.PROCEDURE_STARTED, source=EventSource.DICOM))
    handle: WorkflowHandle = svc.handle(o.accession)
    await handle.cancel()
    await handle.result()
    return o.accession


async def expiry(svc: OrderService, client: Client) -> str:
    """Scheduled for now, never started: EXPIRED after 1 s, the run ends after a 1 s retention."""
    policy = svc.policy.model_copy(update={"expire_after_s": 1.0, "retention_after_close_s": 1.0})
    short = OrderService(client, task_queue=svc.task_queue, policy=policy)
    o = make_order(accession=_acc("EXPIRY"), start=datetime.now(UTC))
    await short.start_order(o, EventSource.HL7, "NW-5")
    await short.handle(o.accession).result()
    return o.accession


async def continued(svc: OrderService, client: Client) -> tuple[str, list[str]]:
    """Patient updates past a small history limit: the order continues as new; returns every run id."""
    policy = svc.policy.model_copy(update={"history_soft_limit": 60, "timeline_kept": 10})
    small = OrderService(client, task_queue=svc.task_queue, policy=policy)
    o = make_order(accession=_acc("CAN"))
    await small.start_order(o, EventSource.HL7, "NW-6")
    for n in range(30):
        patient = o.patient.model_copy(update={"birth_date": f"1980{1 + n % 12:02d}{1 + n % 28:02d}"})
        await small.send_event(o.accession, event(EventKind.PATIENT_UPDATED, patient=patient))
    state = await small.get_state(o.accession)
    assert state.runs > 1, "the scenario must continue as new"
    return o.accession, []


async def unmatched(svc: OrderService, client: Client) -> tuple[str, str]:
    """An unsolicited study kept as an unmatched item, then linked to an order."""
    o = make_order(accession=_acc("LINK"))
    await svc.start_order(o, EventSource.HL7, "NW-7")
    key = "1.2.826.0.1.3680043.9.7777." + str(uuid.uuid4().int % 10**12)
    await record_unmatched(client, d.UnmatchedKind.STUDY, key, {"study_instance_uid": key, "instances": 12},
                           reason="accession matches no order", task_queue=svc.task_queue)
    study = stable_study(uid=key, instances=12)
    await svc.send_event(o.accession, event(EventKind.STUDY_LINKED, study=study, source=EventSource.OPERATOR))
    await resolve_unmatched(client, d.UnmatchedKind.STUDY, key, o.accession, "linked by operator")
    await _wait(svc, o.accession, lambda s: s.status.value == "ACQUIRED", "ACQUIRED")
    return o.accession, d.unmatched_workflow_id(d.UnmatchedKind.STUDY, key)


async def _save_runs(client: Client, workflow_id: str, name: str) -> None:
    """Every run of the workflow id, oldest first: name.json, name_run2.json, ..."""
    runs: list[str] = []
    async for wf in client.list_workflows(f"WorkflowId = {d.quote_visibility(workflow_id)}"):
        runs.append(wf.run_id)
    described = [(await client.get_workflow_handle(workflow_id, run_id=r).describe(), r) for r in runs]
    for n, (_, run_id) in enumerate(sorted(described, key=lambda x: x[0].start_time), start=1):
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        suffix = "" if n == 1 else f"_run{n}"
        (HISTORIES / f"{name}{suffix}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))


async def main(prefix: str) -> None:
    server = DevServer(port=free_port(), ui_port=None)
    await server.start()
    try:
        client = await Client.connect(server.address, data_converter=DATA_CONVERTER)
        tq = "history-" + uuid.uuid4().hex[:6]
        policy = OrderPolicy(step_max_attempts=2, step_initial_interval_s=0.1, sync_consumers=["worklist", "fhir"],
                             report_consumers=["hl7", "fhir"], acquisition_consumers=["archive"])
        svc = OrderService(client, task_queue=tq, policy=policy)
        async with Worker(client, task_queue=tq,
                          workflows=[ImagingOrderWorkflow, AccessionAllocatorWorkflow, UnmatchedItemWorkflow, OrderIndexWorkflow],
                          activities=[_hl7, _fhir_report, _fhir_sync, _worklist, _archive, prune_order_index]):
            HISTORIES.mkdir(exist_ok=True)
            orders = {
                f"{prefix}_order_happy": await happy(svc),
                f"{prefix}_order_cancel": await cancel(svc),
                f"{prefix}_order_stuck": await stuck(svc),
                f"{prefix}_order_temporal_cancel": await temporal_cancel(svc),
                f"{prefix}_order_expiry": await expiry(svc, client),
                f"{prefix}_order_continued": (await continued(svc, client))[0],
            }
            linked, item_id = await unmatched(svc, client)
            orders[f"{prefix}_order_linked"] = linked
            await asyncio.sleep(1.0)  # visibility lists every run
            for name, acc in orders.items():
                await _save_runs(client, d.order_workflow_id(acc), name)
            await _save_runs(client, item_id, f"{prefix}_unmatched")
            await svc.allocate_accession("PLACER-1^EHR")
            await _save_runs(client, d.allocator_workflow_id(tq), f"{prefix}_allocator")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "v2p1"))
