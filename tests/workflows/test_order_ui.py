"""What the Temporal UI shows of an order, read back from the real dev server.

The static summary/details come from `describe()`, the current details from the
`__temporal_workflow_metadata` query (what the UI itself calls), the timer and activity
summaries from the history. Operator actions typed by hand are refused with one line
(update) or recorded as refused (signal), and every action says who took it.
"""

from __future__ import annotations

import json

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import EventKind, OperatorAction, OperatorResult, OrderPolicy, OrderState
from radflow.service.ordering import OrderService
from tests.factories import event, make_order, report
from tests.waiting import eventually
from tests.workflows.test_timers import FlakyConsumer
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow

pytestmark = pytest.mark.integration
API = "http://radflow.example:8000"


async def _details(handle: WorkflowHandle) -> str:
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return meta.current_details


async def _timeline(handle: WorkflowHandle) -> list[str]:
    state = await handle.query(d.STATE_QUERY, result_type=OrderState)
    return [e.summary for e in state.timeline]


async def _refusal(handle: WorkflowHandle, arg: object) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(d.OPERATOR_UPDATE, arg, result_type=OperatorResult)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError), cause
    # What the UI shows: one line, no Python stack trace (no worker file paths).
    assert "\n" not in cause.message and cause.failure is not None and cause.failure.stack_trace == "", cause.failure
    return cause


async def _started(client: Client, task_queue: str, consumer: FlakyConsumer) -> tuple[OrderService, WorkflowHandle, str]:
    policy = OrderPolicy(step_max_attempts=1, step_initial_interval_s=0.1)
    svc = OrderService(client, task_queue=task_queue, policy=policy, api_url=API)
    order = make_order()
    await svc.start_order(order, EventSource.HL7, "NW1")
    return svc, svc.handle(order.accession), order.accession


async def test_static_summary_details_and_current_details(client: Client, task_queue: str) -> None:
    consumer = FlakyConsumer()
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, OrderIndexWorkflow],
                      activities=[consumer.deliver]):
        svc, handle, acc = await _started(client, task_queue, consumer)
        desc = await handle.describe()
        summary, details = await desc.static_summary(), await desc.static_details() or ""
        assert summary == f"CT · CT head without contrast · {acc} @ CT01 · 2030-01-01 09:00"
        assert f"**Accession**: {acc}" in details and "**Procedure**: CTHEAD (L)" in details
        assert f"[{API}/orders/{acc}/timeline]" in details and f"radflow orders show {acc}" in details
        for phi in ("Testperson", "Alex", "MRN001", "19800101"):
            assert phi not in summary + details, phi

        current = await eventually(lambda: _details(handle), lambda t: "Status: SCHEDULED" in t)
        assert current.startswith("**Status: SCHEDULED**") and "hl7: idle" in current

        # The final report's HL7 delivery fails: the lane waits, and the details say how to act.
        await svc.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
        current = await eventually(lambda: _details(handle), lambda t: "Needs attention: hl7" in t)
        assert "**Status: REPORTED**" in current and "ConnectionRefused: EHR refused connection" in current
        assert '*Send Update* `operator`' in current and '`{"action": "retry", "lane": "hl7"}`' in current
        assert f"`radflow orders retry {acc} --lane hl7`" in current
        desc = await eventually(handle.describe, lambda x: x.typed_search_attributes.get(d.SA_ATTENTION_LANE) == ["hl7"])
        assert desc.typed_search_attributes.get(d.SA_ATTENTION_LANE) == ["hl7"]
        assert desc.typed_search_attributes.get(d.SA_PROCEDURE_CODE) == "CTHEAD"

        # Who acted and why: an authenticated API caller.
        consumer.healthy = True
        await svc.operator_action(acc, OperatorAction(action="retry", lane="hl7", note="EHR back", actor="ops-jane",
                                                      via="api"))
        current = await eventually(lambda: _details(handle), lambda t: "Status: DELIVERED" in t)
        assert "Last operator action: retry of hl7 by ops-jane (EHR back)" in current
        assert "Needs attention" not in current
        assert "operator by ops-jane chose retry (EHR back) for hl7" in await _timeline(handle)
        desc = await eventually(handle.describe, lambda x: not x.typed_search_attributes.get(d.SA_ATTENTION_LANE))
        assert not desc.typed_search_attributes.get(d.SA_ATTENTION_LANE)

        summaries = await _history_summaries(handle)
        assert (EventType.EVENT_TYPE_TIMER_STARTED, "no-images deadline") in summaries
        assert (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, "hl7: final report v1 (ORU to EHR)") in summaries


async def _history_summaries(handle: WorkflowHandle) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    async for ev in handle.fetch_history_events():
        if ev.HasField("user_metadata") and ev.user_metadata.HasField("summary"):
            out.append((ev.event_type, json.loads(ev.user_metadata.summary.data)))
    return out


async def test_operator_refusals_are_one_line_and_signals_record_them(client: Client, task_queue: str) -> None:
    consumer = FlakyConsumer()
    async with Worker(client, task_queue=task_queue, workflows=[ImagingOrderWorkflow, OrderIndexWorkflow],
                      activities=[consumer.deliver]):
        svc, handle, acc = await _started(client, task_queue, consumer)

        # Update, nothing waiting yet: refused with the reason (the API's 409 text too).
        err = await _refusal(handle, {"action": "retry"})
        assert err.message == "refused: the order is not waiting for an operator (not NEEDS_ATTENTION)"
        assert err.type == d.ErrorType.NO_ATTENTION_PENDING

        await svc.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
        await eventually(lambda: _details(handle), lambda t: "Needs attention: hl7" in t)

        # What a human types in the UI's update dialog.
        err = await _refusal(handle, {"action": "retyr"})
        assert err.message == "refused: unknown operator action 'retyr' (use retry|skip)"
        assert err.type == d.ErrorType.OPERATOR_REFUSED
        err = await _refusal(handle, {"action": "skip", "lane": "hl7"})
        assert err.message.startswith("refused: skip needs a note saying why")
        err = await _refusal(handle, {"action": "retry", "lane": "hl9"})
        assert err.message == "refused: unknown lane 'hl9': this order's lanes are hl7"
        err = await _refusal(handle, {"acton": "retry"})
        assert err.message.startswith("refused: unknown field 'acton' (fields: action, lane, note)")
        err = await _refusal(handle, "retry")
        assert err.message.startswith('refused: expected a JSON object like {"action": "retry", "lane": "hl7"}, got "retry"')
        err = await _refusal(handle, {"action": 5})
        assert err.message.startswith("refused: action: Input should be a valid string")
        assert not any("operator" in s and "chose" in s for s in await _timeline(handle))  # none entered history

        # The signal cannot be refused: the refusal goes on the timeline and into the current details.
        await handle.signal(d.OPERATOR_SIGNAL, {"action": "retyr"})
        current = await eventually(lambda: _details(handle), lambda t: "Last refused operator action" in t)
        assert "Last refused operator action: refused: unknown operator action 'retyr' (use retry|skip)" in current
        timeline = await _timeline(handle)
        assert "refused: unknown operator action 'retyr' (use retry|skip) from temporal-ui (unauthenticated)" in timeline
        await handle.signal(d.OPERATOR_SIGNAL, {"action": "skip", "lane": "hl7"})
        timeline = await eventually(lambda: _timeline(handle), lambda t: any("needs a note" in s for s in t))
        assert any(s.startswith("refused: skip needs a note") and s.endswith("from temporal-ui (unauthenticated)")
                   for s in timeline), timeline

        # A valid signal from the UI: recorded as taken by the unauthenticated UI, with its note.
        consumer.healthy = True
        await handle.signal(d.OPERATOR_SIGNAL, {"action": "retry", "lane": "hl7", "note": "EHR back"})
        current = await eventually(lambda: _details(handle), lambda t: "Status: DELIVERED" in t)
        assert "Last operator action: retry of hl7 by temporal-ui (unauthenticated) (EHR back)" in current
        assert "operator chose retry (EHR back) for hl7 - by temporal-ui (unauthenticated)" in await _timeline(handle)
