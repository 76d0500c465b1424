"""The saved gateway-archive history (tests/workflows/history_gateway_archive.py) went where it says.

test_replay.py replays it with every other history; this checks it really holds the patch marker
and both archive attempts on the gateway's queue, so it keeps guarding that path."""

from __future__ import annotations

import json
from pathlib import Path

from tests.workflows.test_replay import _with_payloads

PATH = Path(__file__).parent / "histories" / "gwq_order_gateway_archive.json"


def test_archive_was_scheduled_on_the_gateway_queue_under_the_patch() -> None:
    events = json.loads(PATH.read_text())["events"]
    queues = [e["activityTaskScheduledEventAttributes"]["taskQueue"]["name"] for e in events
              if e.get("activityTaskScheduledEventAttributes", {}).get("activityType", {}).get("name") == "archive_study"]
    assert len(queues) == 2 and all(q.endswith("-dicom-gw-1") for q in queues), queues  # study, then the late series
    assert "archive-on-gateway-queue" in _with_payloads(PATH)  # the patch marker (its id is a payload)
