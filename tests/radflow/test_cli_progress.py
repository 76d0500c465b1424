"""Progress bars of the long CLI jobs (`send-hl7` of many files, `worklist-rebuild`), each run as its own
process: on a pseudo-terminal the bar is drawn; on pipes (CI) nothing is drawn and the summary line is printed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.definitions import EventSource
from radflow.gateways.dicom.worklist_store import WorklistStore
from radflow.devstack import DevServer
from tests.cli_terminal import BAR, radflow, run_in_pty, run_piped
from tests.factories import make_order
from tests.radflow.hl7_messages import orm_nw
from tests.stack import Stack, running_stack, stack_settings
from tests.waiting import eventually


@pytest.fixture
async def stack(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Stack]:
    settings = stack_settings(task_queue, sync_consumers=["worklist"], data_dir=tmp_path / "live")
    async with running_stack(client, settings, api=False) as s:
        yield s


def orm_files(tmp_path: Path, count: int) -> tuple[list[str], list[str]]:
    accessions, paths = [], []
    for n in range(count):
        acc = f"PG{uuid.uuid4().hex[:8].upper()}"
        path = tmp_path / f"order{n}.hl7"
        path.write_text(orm_nw(acc, f"M{acc}", f"ORM-{acc}"))
        accessions.append(acc)
        paths.append(str(path))
    return accessions, paths


async def test_send_hl7_of_many_files_draws_a_bar_on_a_terminal_only(stack: Stack, tmp_path: Path) -> None:
    _, paths = orm_files(tmp_path, 3)
    send = radflow("send-hl7", "--port", str(stack.mllp_port), *paths)
    code, screen = await asyncio.to_thread(run_in_pty, send)
    assert code == 0, screen
    assert BAR in screen and "3/3" in screen, screen
    assert "sent 3 of 3 message(s) from 3 file(s): 3 AA" in screen

    (tmp_path / "more").mkdir()
    _, paths = orm_files(tmp_path / "more", 3)
    code, out, err = await asyncio.to_thread(run_piped, radflow("send-hl7", "--port", str(stack.mllp_port), *paths))
    assert code == 0, out + err
    assert BAR not in out + err
    assert out.count("-> AA") == 3 and out.rstrip().endswith("sent 3 of 3 message(s) from 3 file(s): 3 AA")


async def test_worklist_rebuild_draws_a_bar_on_a_terminal_only(stack: Stack, dev_server: DevServer, task_queue: str,
                                                               tmp_path: Path) -> None:
    orders = [make_order(f"PG{uuid.uuid4().hex[:8].upper()}") for _ in range(2)]
    for order in orders:
        await stack.service.start_order(order, EventSource.HL7)
    accessions = [o.accession for o in orders]

    async def listed() -> int:
        query = " OR ".join(f"AccessionNumber = '{a}'" for a in accessions)
        return len([wf async for wf in stack.client.list_workflows(f"({query}) AND OrderStatus = 'SCHEDULED'")])

    assert await eventually(listed, lambda n: n == 2, timeout_s=20) == 2
    rebuild = ("worklist-rebuild", "--temporal-address", dev_server.address, "--task-queue", task_queue)

    lost = tmp_path / "restored"  # an empty worklist (the file was lost): the rebuild fills it
    code, screen = await asyncio.to_thread(run_in_pty, radflow(*rebuild, "--data-dir", str(lost)))
    assert code == 0, screen
    assert BAR in screen and "worklist-rebuild" in screen, screen
    assert "2 orders re-applied" in screen
    assert all(WorklistStore(lost / "worklist.db").get(a).visible for a in accessions)

    code, out, err = await asyncio.to_thread(run_piped, radflow(*rebuild, "--data-dir", str(tmp_path / "again")))
    assert code == 0, out + err
    assert BAR not in out + err and "2 orders re-applied, 0 rows hidden, 0 orders unreadable" in out
