"""`radflow orders show`: report documents and every study of the order are listed."""

from __future__ import annotations

from datetime import UTC, datetime

from radflow.api.schemas import OrderPublic
from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.order import Attachment, OrderState, Report, StudyInfo
from radflow.orders_cli import _render_order
from tests.factories import make_order

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_show_lists_documents_and_all_studies() -> None:
    state = OrderState(
        order=make_order("CLI1"), status=OrderStatus.DELIVERED, created_at=NOW, updated_at=NOW,
        report=Report(status=ReportStatus.FINAL, version=1,
                      attachments=[Attachment(sha256="a" * 64, content_type="application/pdf", size=619, title="Report PDF")]),
        study=StudyInfo(study_instance_uid="1.2.1", series_count=2, instance_count=5),
        extra_studies=[StudyInfo(study_instance_uid="1.2.2", series_count=1, instance_count=3)],
    )
    text = _render_order(OrderPublic.from_state(state).model_dump(mode="json"))
    assert "  report     final; document application/pdf 619 B Report PDF" in text
    assert "  study      1.2.1 (2 series, 5 instances)\n  study      1.2.2 (1 series, 3 instances)" in text
