"""Large reports: the ORU is built off the worker's event loop and stays linear (issue 8 item 1)."""

from __future__ import annotations

import threading

import pytest
from temporalio.testing import ActivityEnvironment

import radflow.activities.hl7_delivery as hl7_delivery
from radflow.domain.definitions import ReportStatus
from tests.activities.test_hl7_delivery import FakeEhr, _delivery, _request, ehr  # noqa: F401


async def test_oru_is_built_in_a_worker_thread_not_on_the_event_loop(ehr: FakeEhr, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    real = hl7_delivery.build_oru

    def recording(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(hl7_delivery, "build_oru", recording)
    result = await ActivityEnvironment().run(_delivery(ehr.port).deliver_report_hl7, _request())
    assert result.outcome == "delivered"
    assert threads and threads[0] != loop_thread


async def test_a_report_of_5000_lines_is_delivered_whole(ehr: FakeEhr) -> None:
    req = _request()
    assert req.state.report is not None
    req.state.report.text = "\n".join(f"line {i} | with ^ delimiters" for i in range(5_000))
    result = await ActivityEnvironment().run(_delivery(ehr.port, timeout_s=30).deliver_report_hl7, req)
    assert result.outcome == "delivered" and req.state.report.status == ReportStatus.FINAL
    [payload] = ehr.received
    obx = [s for s in payload.split(b"\r") if s.startswith(b"OBX|")]
    assert len(obx) == 5_000
    assert obx[-1].split(b"|")[1] == b"5000" and obx[-1].split(b"|")[5] == b"line 4999 \\F\\ with \\S\\ delimiters"
