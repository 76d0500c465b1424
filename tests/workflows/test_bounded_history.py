"""Bounded history (issue 9 item 6): 10,000 events to one order on the real dev server.

Every run stays under the history limit (soft limit 4,000 events, continue-as-new then;
checked against 5,000), the state query stays under 64 KiB, and the whole story is still
readable: the API pages the timeline back through the earlier runs to entry 1.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from radflow.api.app import create_app
from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource
from radflow.domain.order import EventKind, OrderPolicy, StepRequest, StepResult
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.factories import event, make_order
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EVENTS = 10_000
SOFT_LIMIT = 4_000
HARD_LIMIT = 5_000
STATE_LIMIT = 64 * 1024
SENDERS = 8  # concurrent updates (Temporal allows 10 in flight per workflow)


@activity.defn(name="sync_worklist")
async def worklist(req: StepRequest) -> StepResult:
    return StepResult(outcome="delivered")


async def test_ten_thousand_events_keep_every_run_and_the_state_small(client: Client, task_queue: str) -> None:
    policy = OrderPolicy(sync_consumers=["worklist"], report_consumers=[], history_soft_limit=SOFT_LIMIT)
    service = OrderService(client, task_queue=task_queue, policy=policy)
    order = make_order(f"BH{uuid.uuid4().hex[:8].upper()}")
    acc = order.accession
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, OrderIndexWorkflow],
                      activities=[worklist], max_concurrent_workflow_tasks=4):
        await service.start_order(order, EventSource.HL7, "NW-1")
        sent = 0

        async def sender(lane: int) -> None:
            nonlocal sent
            for n in range(lane, EVENTS, SENDERS):
                # A new (synthetic) given name each time: every event is applied and recorded.
                name = order.patient.name.model_copy(update={"given": f"G{n}"})
                patient = order.patient.model_copy(update={"name": name})
                await service.send_event(acc, event(EventKind.PATIENT_UPDATED, control_id=f"A08-{n}", patient=patient))
                sent += 1

        await asyncio.gather(*(sender(lane) for lane in range(SENDERS)))
        assert sent == EVENTS

        state = await service.get_state(acc)
        assert state.runs > 1 and state.timeline_total >= EVENTS
        raw = await client.get_workflow_handle(d.order_workflow_id(acc)).query(d.STATE_QUERY)
        size = len(state.model_dump_json())
        print(f"{EVENTS} events -> {state.runs} runs, {state.timeline_total} timeline entries, state {size} bytes")
        assert size < STATE_LIMIT and raw is not None
        assert len(state.timeline) <= policy.timeline_kept

        lengths = await run_lengths(client, d.order_workflow_id(acc))
        print(f"history events per run: {lengths}")
        assert len(lengths) == state.runs and max(lengths) < HARD_LIMIT

        # The API pages back through every run to the first entry, without gaps.
        settings = Settings(task_queue=task_queue, _env_file=None)
        app = create_app(settings, service)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
            seqs: list[int] = []
            before, run = None, ""
            while True:
                params = {"limit": 1000} | ({"before": before, "run": run} if before else {})
                body = (await http.get(f"/orders/{acc}/timeline", params=params)).json()
                seqs = [e["seq"] for e in body["entries"]] + seqs
                before, run = body["next_before"], body["next_run"]
                if before is None:
                    break
            assert body["total"] >= state.timeline_total  # the lane may have recorded its last sync since
        assert seqs == list(range(1, body["total"] + 1))


async def run_lengths(client: Client, workflow_id: str) -> list[int]:
    """History length of every run, following continue-as-new from the first run."""
    desc = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = desc.raw_description.workflow_execution_info.first_run_id
    lengths = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events = list(history.events)
        lengths.append(len(events))
        last = events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW else None)
    return lengths
