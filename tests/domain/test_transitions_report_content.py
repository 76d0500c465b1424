"""A final report must carry something to read; documents count as content and as changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from radflow.domain.definitions import OrderStatus as S
from radflow.domain.definitions import ReportStatus as R
from radflow.domain.order import Attachment, ImagingReference, OrderState, Report
from radflow.domain.order import EventKind as K
from radflow.domain.transitions import apply_event
from tests.factories import event, make_order

NOW = datetime(2030, 1, 1, 10, tzinfo=UTC)
PDF = Attachment(sha256="a" * 64, content_type="application/pdf", size=10)
UIDS = [ImagingReference(level="study", uid="1.2.3")]


def state(status: S = S.ACQUIRED, report: Report | None = None) -> OrderState:
    return OrderState(order=make_order(), status=status, created_at=NOW, updated_at=NOW, report=report)


@pytest.mark.parametrize("status", [R.FINAL, R.CORRECTED])
def test_final_or_corrected_without_text_or_document_is_refused(status: R) -> None:
    s = state(report=Report(status=R.FINAL, text="old", version=1)) if status == R.CORRECTED else state()
    out = apply_event(s, event(K.REPORT, report=Report(status=status, text=" \n", imaging_references=UIDS)), NOW)
    assert not out.ok and "neither text nor a document" in out.error
    assert s.status == S.ACQUIRED and (s.report is None or s.report.text == "old")


def test_final_with_only_a_document_is_applied_and_delivered() -> None:
    s = state()
    out = apply_event(s, event(K.REPORT, report=Report(status=R.FINAL, attachments=[PDF])), NOW)
    assert out.ok and out.deliver_report and s.report is not None and s.report.attachments == [PDF]


def test_preliminary_may_be_empty() -> None:
    assert apply_event(state(), event(K.REPORT, report=Report(status=R.PRELIMINARY)), NOW).ok


def test_same_text_with_a_new_document_is_a_new_version_not_a_resend() -> None:
    s = state(S.REPORTED, report=Report(status=R.CORRECTED, text="t", version=2))
    out = apply_event(s, event(K.REPORT, report=Report(status=R.CORRECTED, text="t", attachments=[PDF])), NOW)
    assert out.changed and not out.duplicate and s.report is not None and s.report.version == 3
