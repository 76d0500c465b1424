"""Who acted, on the order's timeline: the radflow CLI's OS user comes along with the API call."""

from __future__ import annotations

import httpx

from radflow.api.audit import CLIENT_USER_HEADER
from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import EventKind
from radflow.service.ordering import OrderService
from tests.factories import event, make_order, report
from tests.waiting import eventually


async def test_operator_action_records_the_cli_user_and_note(api: httpx.AsyncClient, service: OrderService) -> None:
    order = make_order()
    acc = order.accession
    await service.start_order(order, EventSource.HL7)
    await service.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))  # the EHR is down
    await eventually(lambda: api.get(f"/orders/{acc}"), lambda r: r.json()["flags"]["needs_attention"], timeout_s=20)

    refused = await api.post(f"/orders/{acc}/skip", json={"lane": "hl7"})
    assert refused.status_code == 409 and refused.json()["detail"].startswith("refused: skip needs a note"), refused.text

    skipped = await api.post(f"/orders/{acc}/skip", json={"note": "sent by fax", "lane": "hl7"},
                             headers={CLIENT_USER_HEADER: "bob\n<script>"})
    assert skipped.status_code == 200, skipped.text
    summaries = [e["summary"] for e in (await api.get(f"/orders/{acc}/timeline")).json()["entries"]]
    expected = "operator chose skip (sent by fax) for hl7 - by radflow CLI, OS user bobscript (unauthenticated)"
    assert expected in summaries, summaries
