"""Unmatched items on the real dev server: record (update-with-start), refresh, list, resolve."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from radflow.domain import definitions as d
from radflow.service.unmatched import (
    UnmatchedConflict,
    UnmatchedNotFound,
    get_unmatched,
    list_unmatched,
    record_unmatched,
    resolve_unmatched,
)
from tests.waiting import eventually
from radflow.workflows.unmatched import UnmatchedItemWorkflow


@pytest.fixture
async def worker(client: Client, task_queue: str):
    async with Worker(client, task_queue=task_queue, workflows=[UnmatchedItemWorkflow]) as w:
        yield w


def key() -> str:
    return f"1.2.826.0.1.{uuid.uuid4().int % 10**12}"


async def test_record_twice_is_one_item_with_fresh_details(client: Client, task_queue: str, worker: Worker) -> None:
    k = key()
    first = await record_unmatched(client, "study", k, {"instance_count": 3, "accession": "NOPE"},
                                   reason="no order with accession NOPE", task_queue=task_queue)
    second = await record_unmatched(client, "study", k, {"instance_count": 7}, task_queue=task_queue)
    assert first.notes == 1 and second.notes == 2
    assert second.details == {"instance_count": 7, "accession": "NOPE"}
    assert second.reason == "no order with accession NOPE" and second.first_seen == first.first_seen
    desc = await client.get_workflow_handle(d.unmatched_workflow_id("study", k)).describe()
    assert desc.workflow_type == d.UNMATCHED_WORKFLOW

    listed = await eventually(lambda: list_unmatched(client, "study", task_queue=task_queue), lambda items: any(i.key == k for i in items))
    assert [i.details["instance_count"] for i in listed if i.key == k] == [7]
    assert all(i.kind == "study" for i in listed)


async def test_resolve_closes_the_item_and_later_reports_see_the_link(client: Client, task_queue: str, worker: Worker) -> None:
    k = key()
    await record_unmatched(client, "mpps", k, {"modality": "CT"}, task_queue=task_queue)
    resolved = await resolve_unmatched(client, "mpps", k, "ACC42", "same patient, scanned early")
    assert resolved.resolved and resolved.linked_accession == "ACC42"
    assert (await resolve_unmatched(client, "mpps", k, "ACC42")).linked_accession == "ACC42"  # repeat: no-op
    with pytest.raises(UnmatchedConflict):
        await resolve_unmatched(client, "mpps", k, "OTHER")

    late = await record_unmatched(client, "mpps", k, {"modality": "MR"}, task_queue=task_queue)
    assert late.linked_accession == "ACC42" and late.details == {"modality": "CT"}  # no second item opened
    assert (await get_unmatched(client, "mpps", k)).resolution_note == "same patient, scanned early"
    listed = await eventually(lambda: list_unmatched(client, task_queue=task_queue), lambda items: all(i.key != k for i in items))
    assert all(i.key != k for i in listed)


async def test_unknown_item(client: Client) -> None:
    assert await get_unmatched(client, "study", "9.9.9.9") is None
    with pytest.raises(UnmatchedNotFound):
        await resolve_unmatched(client, "study", "9.9.9.9", "ACC1")
