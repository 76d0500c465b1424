"""Replay saved histories: a workflow change that would break in-flight orders fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.allocator import AccessionAllocatorWorkflow
from workflows.order import ImagingOrderWorkflow
from workflows.order_v1 import ImagingOrderWorkflowV1

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_present() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"order_happy", "order_cancel", "order_stuck", "allocator"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    replayer = Replayer(workflows=[ImagingOrderWorkflow, ImagingOrderWorkflowV1, AccessionAllocatorWorkflow], data_converter=pydantic_data_converter)
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
