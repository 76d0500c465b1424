"""Closed orders over MLLP (issue 9 item 4), on the real dev server and worker.

The service-level rules (tests/workflows/test_order_closure.py) are what a sender sees here:
a resent NW of a closed order is acknowledged AA and starts nothing; a different NW that
reuses the closed accession is AE "order ... is closed"; an event for it is refused, not 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from radflow.domain import definitions as d
from radflow.domain.definitions import OrderStatus
from radflow.domain.order import OrderState
from tests.gateways.hl7_support import Hl7Stack, open_hl7_stack

pytestmark = pytest.mark.integration

NW = "orm_o01_nw_v23.hl7"


@pytest.fixture
async def closing_stack(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Hl7Stack]:
    # Orders close (the workflow completes) about a second after they are cancelled.
    async with open_hl7_stack(client, task_queue, tmp_path, retention_after_close_hours=0.3 / 3600) as stack:
        yield stack


def cancel_of(nw: bytes) -> bytes:
    """The same order cancelled by its placer (ORC-1 CA, its own MSH-10)."""
    return nw.replace(b"|ORM0001|", b"|ORM0001CA|").replace(b"ORC|NW|", b"ORC|CA|")


async def closed(stack: Hl7Stack, accession: str) -> OrderState:
    handle = stack.client.get_workflow_handle(d.order_workflow_id(accession), result_type=OrderState)
    final = await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    return final


async def test_resent_nw_of_a_closed_order_is_aa_and_a_new_order_on_its_accession_is_ae(closing_stack: Hl7Stack) -> None:
    stack = closing_stack
    nw = stack.msg(NW)
    acc = stack.acc("ACC1001")
    assert [a.code for a in await stack.send(nw)] == ["AA"]
    assert [a.code for a in await stack.send(cancel_of(nw))] == ["AA"]
    final = await closed(stack, acc)
    assert final.status == OrderStatus.CANCELLED

    # The sender's resend of the very same NW: AA, and no new run starts (the order stays closed).
    (resend,) = await stack.send(nw)
    assert resend.code == "AA", resend.text
    assert (await stack.client.get_workflow_handle(d.order_workflow_id(acc)).describe()).status == \
        WorkflowExecutionStatus.COMPLETED

    # Another order (other placer number, other MSH-10) that reuses the closed accession: AE "closed".
    other = nw.replace(b"|ORM0001|", b"|ORM0002|").replace(f"PL1001{stack.tag}".encode(), f"PL9009{stack.tag}".encode())
    (refused,) = await stack.send(other)
    assert refused.code == "AE" and "closed" in refused.text, refused.text
    assert (await stack.service.get_state(acc)).status == OrderStatus.CANCELLED

    # An event for the closed order is refused as closed, not as an unknown order.
    xo = nw.replace(b"|ORM0001|", b"|ORM0003|").replace(b"ORC|NW|", b"ORC|XO|")
    (changed,) = await stack.send(xo)
    assert changed.code == "AE" and "closed" in changed.text, changed.text
