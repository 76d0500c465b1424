"""Baseline starts: a new order takes today's patched paths without recording patch markers.

Each `workflow.patched` marker also makes the SDK upsert TemporalChangeVersion (an event and a
visibility write). Orders started with `StartOrder.baseline` = 1 (OrderService, continue-as-new)
record none; orders without a baseline still ask the history; and a baseline order whose first
tasks an older worker ran (markers recorded) still replays on this code.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource, OrderStatus
from radflow.domain.order import EventKind, OrderPolicy, StartOrder, StepRequest, StepResult
from radflow.service.ordering import OrderService
from radflow.workflows.order import BASELINE_PATCHES, ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow
from tests.factories import event, make_order
from tests.waiting import eventually

HISTORIES = Path(__file__).parent / "histories"
# Recorded before baselines, by code that had every patch of baseline 1 but the last two
# (archive-on-gateway-queue and study-keeps-fuller-copy run on paths these histories do not take).
OLD_WORKER_HISTORIES = sorted(HISTORIES.glob("v2p3_order_*.json"))
VERSION_SA = "TemporalChangeVersion"


def test_the_service_starts_orders_at_the_newest_baseline() -> None:
    assert d.ORDER_BASELINE == len(BASELINE_PATCHES) - 1
    assert BASELINE_PATCHES[0] == frozenset()


@activity.defn(name="sync_worklist")
async def _sync_worklist(req: StepRequest) -> StepResult:
    return StepResult(outcome="synced")


def _first_task_kinds(events: list) -> tuple[list[str], list[str]]:
    markers = [e.marker_recorded_event_attributes.marker_name for e in events
               if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    upserted = [key for e in events if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
                for key in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields]
    return markers, upserted


@pytest.mark.integration
async def test_a_new_order_records_no_patch_marker_and_a_baseline_0_start_still_does(client: Client,
                                                                                    task_queue: str) -> None:
    policy = OrderPolicy(sync_consumers=["worklist"], report_consumers=[], acquisition_consumers=[])
    svc = OrderService(client, task_queue=task_queue, policy=policy)
    # RADFLOW_ORDER_BASELINE=0: what a gateway starts while older workers may still run
    legacy_svc = OrderService(client, task_queue=task_queue, policy=policy, baseline=0)
    baseline_order, legacy_order = make_order(), make_order()
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, OrderIndexWorkflow],
                      activities=[_sync_worklist]):
        await svc.start_order(baseline_order, EventSource.HL7, "NW1")
        await legacy_svc.start_order(legacy_order, EventSource.HL7, "NW1")
        histories = {}
        for order in (baseline_order, legacy_order):
            async def synced(acc: str = order.accession) -> list:
                return [e async for e in client.get_workflow_handle(d.order_workflow_id(acc)).fetch_history_events()]
            histories[order.accession] = await eventually(
                synced, lambda events: any(e.marker_recorded_event_attributes.marker_name == "core_local_activity"
                                           for e in events))
        state = await svc.get_state(baseline_order.accession)
    assert state.status == OrderStatus.SCHEDULED and "synced" in state.lanes["worklist"].last  # the worklist lane ran

    markers, upserted = _first_task_kinds(histories[baseline_order.accession])
    assert "core_patch" not in markers and VERSION_SA not in upserted
    assert "core_local_activity" in markers  # the patched path: the worklist sync as a local activity
    memo = [e for e in histories[baseline_order.accession]
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED]
    assert memo  # the read-model path: the memo follows the state

    markers, upserted = _first_task_kinds(histories[legacy_order.accession])
    assert markers.count("core_patch") >= 2 and VERSION_SA in upserted  # no baseline: the history decides
    assert len(histories[legacy_order.accession]) > len(histories[baseline_order.accession])


@pytest.mark.integration
@pytest.mark.parametrize("baseline", [0, d.ORDER_BASELINE])
async def test_continue_as_new_keeps_the_orders_baseline(client: Client, task_queue: str, baseline: int) -> None:
    policy = OrderPolicy(history_soft_limit=40, sync_consumers=["worklist"], report_consumers=[],
                         acquisition_consumers=[])
    svc = OrderService(client, task_queue=task_queue, policy=policy, baseline=baseline)
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, OrderIndexWorkflow],
                      activities=[_sync_worklist]):
        order = make_order()
        await svc.start_order(order, EventSource.HL7, "NW1")
        for i in range(12):
            await svc.send_event(order.accession, event(EventKind.PATIENT_UPDATED, control_id=f"A08-{i}",
                                                        patient=order.patient.model_copy(update={"sex": "MFOU"[i % 4]})))
        state = await eventually(lambda: svc.get_state(order.accession), lambda s: s.runs > 1)
        events = [e async for e in svc.handle(order.accession).fetch_history_events()]  # the current run
    assert state.runs > 1
    [started] = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED]
    assert started.workflow_execution_started_event_attributes.continued_execution_run_id  # a later run
    start = pydantic_data_converter.payload_converter.from_payloads(
        started.workflow_execution_started_event_attributes.input.payloads, [StartOrder])[0]
    assert start.baseline == baseline
    markers, _ = _first_task_kinds(events)
    assert ("core_patch" in markers) == (baseline == 0)


def _as_baseline_start(path: Path) -> WorkflowHistory:
    """The history as if an older worker had run a baseline start: same events, start input with baseline 1."""
    raw = json.loads(path.read_text())
    started = raw["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = started["input"]["payloads"][0]
    start = json.loads(base64.b64decode(payload["data"]))
    assert "baseline" not in start  # recorded before baselines existed
    start["baseline"] = 1
    payload["data"] = base64.b64encode(json.dumps(start).encode()).decode()
    return WorkflowHistory.from_json(path.stem, json.dumps(raw))


def _replayer() -> Replayer:
    return Replayer(workflows=[ImagingOrderWorkflow], data_converter=pydantic_data_converter)


def test_there_are_older_worker_histories() -> None:
    assert len(OLD_WORKER_HISTORIES) >= 8
    assert all("core_patch" in p.read_text() for p in OLD_WORKER_HISTORIES if "continued_run" not in p.stem)


@pytest.mark.parametrize("path", OLD_WORKER_HISTORIES, ids=[p.stem for p in OLD_WORKER_HISTORIES])
async def test_a_baseline_order_an_older_worker_ran_still_replays(path: Path) -> None:
    result = await _replayer().replay_workflow(_as_baseline_start(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_without_matching_the_older_workers_markers_the_replay_breaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the markers must be matched during replay, or such orders would be stuck."""
    monkeypatch.setattr(workflow.unsafe, "is_replaying_history_events", staticmethod(lambda: False))
    result = await _replayer().replay_workflow(_as_baseline_start(HISTORIES / "v2p3_order_happy.json"),
                                               raise_on_replay_failure=False)
    assert result.replay_failure is not None
