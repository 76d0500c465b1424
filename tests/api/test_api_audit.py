"""The audit trail and operator identity: a read and a retry through the API, on the real stack."""

from __future__ import annotations

import json
import stat

import httpx
from pydantic import SecretStr

from api.app import create_app
from domain.definitions import EventSource, ReportStatus
from domain.order import EventKind
from radflow.ordering import OrderService
from radflow.settings import Settings
from tests.factories import event, make_order, report
from tests.waiting import eventually

READER = "reader-secret-0123456789abcdef"
OPERATOR = "operator-secret-0123456789abcdef"


async def test_a_read_and_a_retry_are_audited_and_the_operator_lands_on_the_timeline(
    service: OrderService, settings: Settings, worker: None
) -> None:
    audit_path = settings.data_dir / "audit" / "api.jsonl"
    keys = f"ward-viewer:reader:{READER},ops-jane:operator+reader:{OPERATOR}"
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(keys), "audit_log": audit_path}), service)
    order = make_order()
    acc = order.accession
    await service.start_order(order, EventSource.HL7)
    await service.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    reader = {"Authorization": f"Bearer {READER}"}
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5555)),
                                 base_url="http://radflow.test") as http:
        await eventually(lambda: service.get_state(acc), lambda s: s.needs_attention, timeout_s=20)
        audit_path.write_text("")  # only what follows
        read = await http.get(f"/orders/{acc}", headers=reader)
        refused = await http.post(f"/orders/{acc}/retry", json={"note": "EHR back?"}, headers=reader)
        retried = await http.post(f"/orders/{acc}/retry", json={"note": "EHR back?"}, headers=operator)
        anonymous = await http.get(f"/orders/{acc}/timeline", params={"limit": 5})
        timeline = await http.get(f"/orders/{acc}/timeline", headers=operator)
        health = await http.get("/healthz")
    assert [r.status_code for r in (read, refused, retried, anonymous, timeline)] == [200, 403, 200, 401, 200]
    assert health.status_code in (200, 503)

    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    for r in records:
        assert r["time"].endswith("+00:00") and r["source"] == "10.1.2.3" and r["order"] == acc
    assert [(r["who"], r["roles"], r["action"], r["outcome"]) for r in records] == [
        ("ward-viewer", ["reader"], "GET /orders/{accession}", 200),
        ("ward-viewer", ["reader"], "POST /orders/{accession}/retry", 403),
        ("ops-jane", ["operator", "reader"], "POST /orders/{accession}/retry", 200),
        (None, [], "GET /orders/{accession}/timeline", 401),
        ("ops-jane", ["operator", "reader"], "GET /orders/{accession}/timeline", 200),
    ]  # /healthz is public: not a PHI read, not audited
    assert records[3]["query"] == "limit=5" and "query" not in records[0]  # searches say what was asked
    assert stat.S_IMODE(audit_path.stat().st_mode) == 0o600
    summaries = [e["summary"] for e in timeline.json()["entries"]]
    assert any(s.startswith("operator by ops-jane chose retry (EHR back?)") for s in summaries), summaries


async def test_a_cancel_names_its_operator(service: OrderService, settings: Settings, worker: None) -> None:
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(f"ops-jane:operator+reader:{OPERATOR}")}), service)
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test") as http:
        cancel = await http.post(f"/orders/{order.accession}/cancel", json={"reason": "duplicate"}, headers=auth)
        entries = (await http.get(f"/orders/{order.accession}/timeline", headers=auth)).json()["entries"]
    assert cancel.status_code == 200
    assert [e["summary"] for e in entries if e["kind"] == "CANCEL"] == ["cancelled: duplicate by ops-jane"]
