"""`radflow send-hl7` against a running MLLP gateway + worker on the session dev server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.cli import main
from radflow.devstack import free_port
from tests.radflow.hl7_messages import adt_a04, orm_ca, orm_nw, unsupported
from tests.stack import Stack, running_stack, stack_settings


@pytest.fixture
async def stack(client: Client, task_queue: str) -> AsyncIterator[Stack]:
    async with running_stack(client, stack_settings(task_queue), api=False) as s:
        yield s


async def send(capsys: pytest.CaptureFixture[str], stack: Stack, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["send-hl7", "--port", str(stack.mllp_port), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def _ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8].upper()
    return f"A{tag}", f"M{tag}"


async def test_adt_then_orm_from_one_lf_file_are_acknowledged(stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    acc, mrn = _ids()
    # Two messages in one file, LF-separated as editors save them.
    text = (adt_a04(mrn, f"ADT-{acc}") + orm_nw(acc, mrn, f"ORM-{acc}")).replace("\r", "\n")
    path = tmp_path / "orders.hl7"
    path.write_text(text)

    code, out = await send(capsys, stack, str(path))

    assert code == 0, out
    assert f"orders.hl7#1 ADT-{acc} -> AA" in out and f"orders.hl7#2 ORM-{acc} -> AA" in out
    state = await stack.service.get_state(acc)
    assert state.order.patient.mrn == mrn and state.order.procedure.code == "CTHEAD"


async def test_non_aa_answers_make_the_exit_code_non_zero(stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    acc, mrn = _ids()
    unknown_cancel = tmp_path / "cancel.hl7"
    unknown_cancel.write_bytes(orm_ca(acc, mrn, f"CA-{acc}").encode())
    bad_type = tmp_path / "query.hl7"
    bad_type.write_bytes(unsupported(f"Q-{acc}").encode())

    code, out = await send(capsys, stack, str(unknown_cancel), str(bad_type))

    assert code == 1, out
    assert f"cancel.hl7#1 CA-{acc} -> AE" in out  # parses, cannot apply: unknown order
    assert f"query.hl7#1 Q-{acc} -> AR" in out  # unsupported message type


async def test_unreachable_gateway_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.hl7"
    path.write_bytes(orm_nw("AX1", "MX1", "C1").encode())
    code = await asyncio.to_thread(main, ["send-hl7", "--port", str(free_port()), "--timeout", "2", str(path)])
    assert code == 2 and "failed" in capsys.readouterr().err
