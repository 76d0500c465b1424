"""Replay saved histories: a workflow change that would break in-flight orders fails here.

`v1_*`: ImagingOrder v1 (workflows/order_v1.py, kept for orders started before v2).
`v2_*`: ImagingOrder v2, one per path (tests/workflows/history_scenarios.py regenerates them).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from radflow.workflows.allocator import AccessionAllocatorWorkflow
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow
from radflow.workflows.order_v1 import ImagingOrderWorkflowV1
from radflow.workflows.unmatched import UnmatchedItemWorkflow

# v2: before the "lanes-fewer-activities" patch; v2p1: with it; v2p2: with "ui-search-attributes"
# (AttentionLane/ProcedureCode upserts), timer summaries and a refused operator-signal; v2p3: with
# "read-model-memo" (the memo kept equal to the state, carried through continue-as-new); v2p4: baseline
# starts (StartOrder.baseline 1): the same paths without any patch marker.
V2_PREFIXES = ("v2", "v2p1", "v2p2", "v2p3", "v2p4")
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_present() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"v1_order_happy", "v1_order_cancel", "v1_order_stuck", "v1_allocator"} <= names
    v2_paths = {"happy", "cancel", "stuck", "temporal_cancel", "expiry", "continued", "continued_run2", "linked"}
    for prefix in V2_PREFIXES:
        assert {f"{prefix}_order_{p}" for p in v2_paths} | {f"{prefix}_unmatched", f"{prefix}_allocator"} <= names


@pytest.mark.parametrize("prefix", V2_PREFIXES)
def test_v2_histories_cover_every_path(prefix: str) -> None:
    """The saved v2 histories really went through the paths they are named after."""
    text = {p.stem.removeprefix(prefix): _with_payloads(p) for p in HISTORIES if p.stem.startswith(f"{prefix}_order")}
    text = {f"v2{k}": v for k, v in text.items()}
    happy = text["v2_order_happy"]
    for activity in ("sync_worklist", "sync_fhir", "archive_study", "deliver_report_hl7", "deliver_report_fhir"):
        assert activity in happy, activity
    assert happy.count('"name": "deliver_report_hl7"') == 3  # P, F, then the corrected report
    if prefix in ("v2p1", "v2p2", "v2p3"):  # worklist syncs as local activities (markers), the patch marker recorded
        assert "lanes-fewer-activities" in happy and "MARKER_RECORDED" in happy
    if prefix == "v2p4":  # the same paths from the baseline: local activity markers, no patch marker
        assert "core_local_activity" in happy and "core_patch" not in happy and "TemporalChangeVersion" not in happy
        assert "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED" in happy
    if prefix in ("v2p3", "v2p4"):
        assert ("read-model-memo" in happy) == (prefix == "v2p3") and "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED" in happy
        continued = json.loads((Path(__file__).parent / "histories" / f"{prefix}_order_continued.json").read_text())
        [can] = [e for e in continued["events"] if e["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"]
        assert "order" in can["workflowExecutionContinuedAsNewEventAttributes"]["memo"]["fields"]
    if prefix in ("v2p2", "v2p3", "v2p4"):
        stuck = text["v2_order_stuck"]
        assert "AttentionLane" in stuck and "ProcedureCode" in happy
        assert ("ui-search-attributes" in stuck) == (prefix != "v2p4")  # the patch marker, until baselines
        assert '"action": "retyr"' in stuck or '"action":"retyr"' in stuck
        assert "expiry: scheduled, never started" in text["v2_order_expiry"]  # a timer summary
    assert '"status":"corrected"' in happy
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in text["v2_order_continued"]
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED" in text["v2_order_temporal_cancel"]
    assert "EXPIRED" in text["v2_order_expiry"] and "STUDY_LINKED" in text["v2_order_linked"]
    assert '"action":"skip"' in text["v2_order_stuck"] and '"action":"retry","note":"","lane":"hl7"' in text["v2_order_stuck"]


def _with_payloads(path: Path) -> str:
    """The history JSON plus its payloads decoded (they are base64 in the file)."""
    raw = path.read_text()
    decoded: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "data" in node and "metadata" in node and isinstance(node["data"], str):
                decoded.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(raw))
    return raw + "\n".join(decoded)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    replayer = Replayer(
        workflows=[ImagingOrderWorkflow, ImagingOrderWorkflowV1, AccessionAllocatorWorkflow, UnmatchedItemWorkflow,
                   OrderIndexWorkflow],
        data_converter=pydantic_data_converter,
    )
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
