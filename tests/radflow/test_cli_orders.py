"""`radflow orders ...` against a running stack (real uvicorn on a free port, real worker)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import EventKind
from radflow.cli import main
from radflow.devstack import free_port
from tests.factories import event, make_order, report
from tests.stack import Stack, running_stack, stack_settings
from tests.waiting import eventually


@pytest.fixture
async def stack(client: Client, task_queue: str) -> AsyncIterator[Stack]:
    async with running_stack(client, stack_settings(task_queue)) as s:
        yield s


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    # The CLI is synchronous (httpx.Client); a thread keeps this loop free to serve the API.
    code = await asyncio.to_thread(main, list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


async def _visible(stack: Stack, mrn: str, count: int) -> None:
    async def fetch() -> int:
        async with httpx.AsyncClient(base_url=stack.api_url) as http:
            return len((await http.get("/orders", params={"patient": mrn})).json()["orders"])

    assert await eventually(fetch, lambda n: n == count) == count


async def test_list_show_timeline(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    mrn = "MRN" + uuid.uuid4().hex[:8].upper()
    first, second = make_order(mrn=mrn, station="CT05"), make_order(mrn=mrn, scheduled=False)
    for order in (first, second):
        await stack.service.start_order(order, EventSource.HL7, f"MSG-{order.accession}")
    await _visible(stack, mrn, 2)
    api = ("orders", "--api", stack.api_url)

    code, out, _ = await cli(capsys, *api, "list", "--patient", mrn)
    assert code == 0
    assert first.accession in out and second.accession in out and "2 order(s)" in out
    assert "CT05" in out and "ORDERED" in out and "SCHEDULED" in out

    code, out, _ = await cli(capsys, *api, "list", "--patient", mrn, "--status", "ORDERED")
    assert code == 0 and second.accession in out and first.accession not in out

    code, out, _ = await cli(capsys, *api, "show", first.accession)
    assert code == 0
    assert f"order {first.accession}: SCHEDULED" in out and "CTHEAD" in out and f"MRN {mrn}" in out

    code, out, _ = await cli(capsys, *api, "--json", "show", first.accession)
    assert code == 0 and json.loads(out)["schedule"]["station_ae"] == "CT05"

    code, out, _ = await cli(capsys, *api, "timeline", first.accession)
    assert code == 0 and "NEW_ORDER" in out and f"MSG-{first.accession}" in out


async def test_cancel_and_refusals(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    order = make_order()
    await stack.service.start_order(order, EventSource.HL7)
    api = ("orders", "--api", stack.api_url)

    code, out, _ = await cli(capsys, *api, "cancel", order.accession, "--reason", "entered twice")
    assert code == 0 and "CANCELLED (changed)" in out
    state = await stack.service.get_state(order.accession)
    assert state.status.value == "CANCELLED" and "entered twice" in state.timeline[-1].summary

    code, _, err = await cli(capsys, *api, "retry", order.accession)
    assert code == 1 and "error 409" in err
    code, _, err = await cli(capsys, *api, "show", "NO-SUCH-ORDER")
    assert code == 1 and "error 404" in err
    code, _, err = await cli(capsys, *api, "list", "--status", "NOT_A_STATUS")
    assert code == 1 and "error 422" in err
    code, _, err = await cli(capsys, "orders", "--api", f"http://127.0.0.1:{free_port()}", "list")
    assert code == 2 and "cannot reach" in err


async def test_skip_a_stuck_delivery(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    order = make_order()
    acc = order.accession
    await stack.service.start_order(order, EventSource.HL7)
    await stack.service.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    state = await eventually(lambda: stack.service.get_state(acc), lambda s: s.attention is not None, timeout_s=20)
    assert state.attention is not None
    api = ("orders", "--api", stack.api_url)

    code, out, _ = await cli(capsys, *api, "show", acc)
    assert code == 0 and "ATTENTION  hl7:report" in out

    assert "lane       hl7: WAITING FOR OPERATOR" in out

    code, out, _ = await cli(capsys, *api, "skip", acc, "--note", "sent by fax", "--lane", "hl7")
    # The answer is the status after the skip: no destination acknowledged the report.
    assert code == 0 and "operator skip accepted, status COMPLETED" in out
    done = await stack.service.get_state(acc)
    assert done.status.value == "COMPLETED" and done.deliveries["hl7"].endswith(":skipped")
