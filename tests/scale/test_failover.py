"""Issue 12.3: 300 orders through two of each radflow process while kill -9 hits one process of each kind.

The harness is bench/failover.py (run it directly for the figures): one Temporal dev server and
one PostgreSQL shared by 2 workers, 2 MLLP gateways, 2 DICOM gateways and 2 APIs, each started
as `python -m radflow <role>` with its own data directory; an EHR MLLP sink, the test FHIR
server and Orthanc as destinations. Per order: ADT + ORM NW, MWL C-FIND, MPPS N-CREATE/N-SET,
C-STORE, ORU F; senders resend like real ones, to the other process of the pair.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.failover import Config, run_failover
from bench.failover_cluster import ROLES

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

ORDERS = 300


async def test_every_order_delivered_exactly_once_through_kill_9_of_each_kind(tmp_path: Path) -> None:
    report = await run_failover(Config(orders=ORDERS, concurrency=24, root=tmp_path))
    summary = "\n".join(report.lines())
    print(summary)
    f = report.findings

    # The chaos happened: one process of each kind killed, and each came back ready.
    assert report.kills == {role: 1 for role in ROLES}, summary
    assert sorted(name.split("-")[0] for name, _ in report.recovery_s) == sorted(ROLES), summary
    assert not report.own_exits, summary  # no process died without being killed
    # Nothing lost, nothing duplicated, nothing stuck: every order DELIVERED, exactly once.
    assert (len(f.lost), len(f.duplicated), len(f.stuck)) == (0, 0, 0), summary
    assert f.statuses == {"DELIVERED": ORDERS}, summary
    assert not f.wrong, summary
    assert not f.sender_failures, summary
    assert f.unmatched == 0, summary
    # Every sink has every order (copies are allowed: delivery is at-least-once).
    assert not f.ehr_undelivered, summary
    assert not f.fhir_missing and not f.fhir_duplicate_resources, summary
    assert not f.archive_missing, summary
    assert report.ok
