"""`radflow orders retry|skip|cancel` by filter against a running stack (real uvicorn, real worker
whose HL7 delivery fails for real). The CLI runs as its own process: once on pipes (as in CI: no
progress bar, the summary still printed) and once on a pseudo-terminal (the bar is drawn)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import EventKind
from tests.cli_terminal import BAR, radflow, run_in_pty, run_piped
from tests.factories import event, make_order, report
from tests.stack import Stack, running_stack, stack_settings
from tests.waiting import eventually


@pytest.fixture
async def stack(client: Client, task_queue: str) -> AsyncIterator[Stack]:
    async with running_stack(client, stack_settings(task_queue)) as s:
        yield s


def station() -> str:
    return "CB" + uuid.uuid4().hex[:6].upper()


async def waiting_order(stack: Stack, at: str) -> str:
    order = make_order(station=at)
    await stack.service.start_order(order, EventSource.HL7)
    await stack.service.send_event(order.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    state = await eventually(lambda: stack.service.get_state(order.accession),
                             lambda s: s.lanes.get("hl7") is not None and s.lanes["hl7"].attention is not None, timeout_s=30)
    assert state.lanes["hl7"].attention is not None
    return order.accession


async def visible(stack: Stack, at: str, count: int, **params: str) -> None:
    async def fetch() -> int:
        async with httpx.AsyncClient(base_url=stack.api_url) as http:
            return len((await http.get("/orders", params={"station": at, **params})).json()["orders"])

    assert await eventually(fetch, lambda n: n == count, timeout_s=20) == count


async def test_skip_by_filter_dry_run_then_real_on_pipes(stack: Stack) -> None:
    here = station()
    targets = sorted([await waiting_order(stack, here) for _ in range(2)])
    idle = make_order(station=here)
    await stack.service.start_order(idle, EventSource.HL7)
    await visible(stack, here, 2, needs_attention="true")
    api = ("orders", "--api", stack.api_url)

    code, out, err = await asyncio.to_thread(run_piped, radflow(*api, "skip", "--station", here, "--lane", "hl7", "--dry-run"))
    assert code == 0, err
    assert "skip: 2 order(s) matched of 2 candidate(s) - dry run, nothing changed" in out
    assert all(f"would skip {acc}" in out for acc in targets) and idle.accession not in out
    assert BAR not in out + err
    for acc in targets:
        assert (await stack.service.get_state(acc)).lanes["hl7"].attention is not None

    code, out, err = await asyncio.to_thread(run_piped, radflow(*api, "skip", "--station", here, "--lane", "hl7"))
    assert code == 2 and "needs --note" in err  # a real run says why

    code, out, err = await asyncio.to_thread(run_piped, radflow(*api, "skip", "--station", here, "--lane", "hl7",
                                                                "--note", "EHR replaced"))
    assert code == 0, out + err
    assert "skip: 2 order(s) matched" in out and out.rstrip().endswith("skip: done 2, refused 0, failed 0")
    assert BAR not in out + err  # not a terminal: no bar, the summary is the record
    for acc in targets:
        state = await stack.service.get_state(acc)
        assert state.lanes["hl7"].attention is None and state.status.value == "COMPLETED"
        assert any("chose skip (EHR replaced)" in e.summary for e in state.timeline)
    idle_state = await stack.service.get_state(idle.accession)
    assert idle_state.status.value == "SCHEDULED" and not any("chose" in e.summary for e in idle_state.timeline)


async def test_retry_by_filter_reports_refusals_and_exits_1(stack: Stack) -> None:
    here = station()
    waiting = await waiting_order(stack, here)
    idle = make_order(station=here)
    await stack.service.start_order(idle, EventSource.HL7)
    await visible(stack, here, 2)
    code, out, err = await asyncio.to_thread(run_piped, radflow("orders", "--api", stack.api_url, "retry", "--station", here,
                                                                "--note", "interface back"))
    assert code == 1, out + err
    assert f"refused: {idle.accession}: 409" in out
    assert f": {waiting}:" not in out  # done: counted, not listed as a problem
    assert out.rstrip().endswith("retry: done 1, refused 1, failed 0")


async def test_cancel_by_filter_draws_a_progress_bar_on_a_terminal(stack: Stack) -> None:
    here = station()
    orders = [make_order(station=here) for _ in range(3)]
    for order in orders:
        await stack.service.start_order(order, EventSource.HL7)
    await visible(stack, here, 3)
    code, screen = await asyncio.to_thread(run_in_pty, radflow("orders", "--api", stack.api_url, "cancel", "--station", here,
                                                               "--status", "SCHEDULED", "--reason", "room closed"))
    assert code == 0, screen
    assert BAR in screen and "3/3" in screen, screen
    assert "cancel: done 3, refused 0, failed 0" in screen
    for order in orders:
        assert (await stack.service.get_state(order.accession)).status.value == "CANCELLED"


async def test_accession_and_filter_together_is_a_usage_error(stack: Stack) -> None:
    code, _, err = await asyncio.to_thread(run_piped, radflow("orders", "--api", stack.api_url, "retry", "ACC1",
                                                              "--station", "CT01"))
    assert code == 2 and "not both" in err
    code, _, err = await asyncio.to_thread(run_piped, radflow("orders", "--api", stack.api_url, "cancel", "--reason", "x"))
    assert code == 2 and "filter flags" in err
