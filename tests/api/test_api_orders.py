"""One order through the HTTP API: read, timeline, schedule, cancel, operator retry/skip."""

from __future__ import annotations

import httpx

from radflow.domain.definitions import EventSource, OrderStatus, ReportStatus
from radflow.domain.order import EventKind
from radflow.service.ordering import OrderService
from tests.factories import event, make_order, report
from tests.waiting import eventually


async def test_get_order_shows_status_patient_procedure_schedule_and_flags(api: httpx.AsyncClient, service: OrderService) -> None:
    order = make_order(mrn="MRN-API-1", station="CT07")
    await service.start_order(order, EventSource.HL7, "MSG-API-1")

    resp = await api.get(f"/orders/{order.accession}")

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["accession"] == order.accession
    assert body["status"] == "SCHEDULED" and body["clinical_status"] == "SCHEDULED"
    assert body["patient"] == {
        "mrn": "MRN-API-1", "issuer": "HOSP", "name": "Testperson^Alex", "family_name": "Testperson",
        "given_name": "Alex", "birth_date": "19800101", "sex": "O",
    }
    assert body["procedure"]["code"] == "CTHEAD" and body["procedure"]["text"] == "CT head without contrast"
    assert body["schedule"]["station_ae"] == "CT07" and body["schedule"]["modality"] == "CT"
    assert body["schedule"]["start"].startswith("2030-01-01T09:00:00")
    assert body["report_status"] is None
    assert body["flags"] == {
        "overdue": [], "needs_attention": False, "attention_reason": None, "attention_step": None,
        "attention_since": None, "exceptions": 0,
    }
    assert body["study"]["instance_count"] == 0
    assert "timeline" not in body and "seen_control_ids" not in body  # not the workflow state


async def test_unknown_order_is_404_everywhere(api: httpx.AsyncClient) -> None:
    for method, path, payload in [
        ("GET", "/orders/NOPE404", None),
        ("GET", "/orders/NOPE404/timeline", None),
        ("POST", "/orders/NOPE404/cancel", {"reason": "x"}),
        ("POST", "/orders/NOPE404/schedule", {"station_ae": "CT1", "start": "2030-01-01T10:00:00Z"}),
        ("POST", "/orders/NOPE404/retry", {}),
        ("POST", "/orders/NOPE404/skip", {}),
    ]:
        resp = await api.request(method, path, json=payload)
        assert resp.status_code == 404, (method, path, resp.text)
        assert "NOPE404" in resp.json()["detail"]


async def test_timeline_lists_events_with_source_and_control_id(api: httpx.AsyncClient, service: OrderService) -> None:
    order = make_order()
    await service.start_order(order, EventSource.HL7, "MSG-TL-1")
    await service.send_event(order.accession, event(EventKind.PROCEDURE_STARTED, "MPPS-1", source=EventSource.DICOM))

    resp = await api.get(f"/orders/{order.accession}/timeline")

    assert resp.status_code == 200
    entries = resp.json()["entries"]
    assert [(e["kind"], e["source"], e["control_id"]) for e in entries[:2]] == [
        ("NEW_ORDER", "HL7", "MSG-TL-1"),
        ("PROCEDURE_STARTED", "DICOM", "MPPS-1"),
    ]
    assert entries[1]["status"] == "IN_PROGRESS" and entries[1]["summary"]


async def test_schedule_an_unscheduled_order_once_per_idempotency_key(api: httpx.AsyncClient, service: OrderService) -> None:
    order = make_order(scheduled=False)
    started = await service.start_order(order, EventSource.HL7, "MSG-SC-1")
    assert started.status == OrderStatus.ORDERED
    body = {"station_ae": "MR02", "modality": "MR", "start": "2030-02-03T08:30:00"}  # no offset: UTC
    headers = {"Idempotency-Key": "sched-key-1"}

    first = await api.post(f"/orders/{order.accession}/schedule", json=body, headers=headers)
    again = await api.post(f"/orders/{order.accession}/schedule", json=body, headers=headers)

    assert first.status_code == 200, first.text
    assert first.json()["status"] == "SCHEDULED" and first.json()["changed"] is True
    assert again.status_code == 200 and again.json() == first.json()  # the first answer, replayed
    detail = (await api.get(f"/orders/{order.accession}")).json()
    assert detail["schedule"]["station_ae"] == "MR02" and detail["schedule"]["modality"] == "MR"
    assert detail["schedule"]["start"] in ("2030-02-03T08:30:00Z", "2030-02-03T08:30:00+00:00")
    timeline = (await api.get(f"/orders/{order.accession}/timeline")).json()["entries"]
    scheduled = [e for e in timeline if e["kind"] == "SCHEDULE"]
    assert len(scheduled) == 1 and scheduled[0]["source"] == "API" and scheduled[0]["control_id"] == "sched-key-1"


async def test_schedule_validation_is_422(api: httpx.AsyncClient, service: OrderService) -> None:
    order = make_order(scheduled=False)
    await service.start_order(order, EventSource.HL7)
    for body in [
        {"start": "2030-01-01T10:00:00Z"},  # neither station nor modality
        {"station_ae": "CT1"},  # no start
        {"station_ae": "CT1", "start": "next tuesday"},
        {"station_ae": "X" * 17, "start": "2030-01-01T10:00:00Z"},  # AE titles are 16 chars at most
    ]:
        resp = await api.post(f"/orders/{order.accession}/schedule", json=body)
        assert resp.status_code == 422, (body, resp.text)
    assert (await api.get(f"/orders/{order.accession}")).json()["status"] == "ORDERED"


async def test_refused_transition_is_409_and_counted(api: httpx.AsyncClient, service: OrderService) -> None:
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    cancelled = await api.post(f"/orders/{order.accession}/cancel", json={"reason": "patient declined"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"

    resp = await api.post(f"/orders/{order.accession}/schedule", json={"station_ae": "CT1", "start": "2030-01-01T10:00:00Z"})

    assert resp.status_code == 409, resp.text
    assert resp.json()["error_type"] == "InvalidTransition"
    detail = (await api.get(f"/orders/{order.accession}")).json()
    assert detail["status"] == "CANCELLED" and detail["flags"]["exceptions"] == 1


async def test_cancel_records_reason_and_resend_changes_nothing(api: httpx.AsyncClient, service: OrderService) -> None:
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    headers = {"Idempotency-Key": "cancel-1"}

    first = await api.post(f"/orders/{order.accession}/cancel", json={"reason": "duplicate order"}, headers=headers)
    again = await api.post(f"/orders/{order.accession}/cancel", json={"reason": "duplicate order"}, headers=headers)
    no_body = await api.post(f"/orders/{order.accession}/cancel")

    assert first.status_code == 200 and first.json()["changed"] is True
    assert again.status_code == 200 and again.json() == first.json()
    assert no_body.status_code == 415  # a state change needs a JSON body (no cross-site form posts)
    entries = (await api.get(f"/orders/{order.accession}/timeline")).json()["entries"]
    cancels = [e for e in entries if e["kind"] == "CANCEL"]
    assert len(cancels) == 1 and "duplicate order" in cancels[0]["summary"]


async def test_operator_actions_refused_when_nothing_waits(api: httpx.AsyncClient, service: OrderService) -> None:
    order = make_order()
    await service.start_order(order, EventSource.HL7)
    for action in ("retry", "skip"):
        resp = await api.post(f"/orders/{order.accession}/{action}", json={"note": "test"})
        assert resp.status_code == 409, resp.text
        assert "NEEDS_ATTENTION" in resp.json()["detail"]


async def test_failed_delivery_needs_attention_then_retry_then_skip(api: httpx.AsyncClient, service: OrderService) -> None:
    """The real HL7 delivery activity fails (EHR port closed) -> NEEDS_ATTENTION -> retry -> again -> skip."""
    order = make_order()
    acc = order.accession
    await service.start_order(order, EventSource.HL7)
    await service.send_event(acc, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))

    async def flags() -> dict:
        return (await api.get(f"/orders/{acc}")).json()

    waiting = await eventually(flags, lambda b: b["flags"]["needs_attention"], timeout_s=20)
    # The status stays clinical; the hl7 lane is the one waiting.
    assert waiting["status"] == "REPORTED" and waiting["clinical_status"] == "REPORTED"
    assert waiting["flags"]["attention_step"] == "hl7:report" and waiting["flags"]["attention_reason"]
    assert waiting["lanes"]["hl7"]["needs_attention"] and waiting["lanes"]["hl7"]["attention_reason"]

    retried = await api.post(f"/orders/{acc}/retry", json={"note": "EHR back?"}, headers={"Idempotency-Key": "op-1"})
    assert retried.status_code == 200, retried.text
    assert retried.json()["action"] == "retry"
    # The EHR is still down: the retried step fails again and waits again.
    timeline = await eventually(lambda: api.get(f"/orders/{acc}/timeline"),
                                lambda r: sum(e["kind"] == "NEEDS_ATTENTION" for e in r.json()["entries"]) >= 2, timeout_s=20)
    assert sum(e["kind"] == "NEEDS_ATTENTION" for e in timeline.json()["entries"]) == 2
    await eventually(flags, lambda b: b["flags"]["needs_attention"], timeout_s=10)

    skipped = await api.post(f"/orders/{acc}/skip", json={"note": "delivered by phone", "lane": "hl7"})
    assert skipped.status_code == 200, skipped.text
    # The reply carries the status after the skip: no destination acknowledged the report.
    assert skipped.json()["status"] == "COMPLETED" and skipped.json()["needs_attention"] is False
    done = await flags()
    assert done["status"] == "COMPLETED" and done["flags"]["needs_attention"] is False
    assert done["deliveries"]["hl7"].endswith(":skipped")
    summaries = [e["summary"] for e in (await api.get(f"/orders/{acc}/timeline")).json()["entries"]]
    assert any("operator chose retry (EHR back?)" in s for s in summaries)
    assert any("operator chose skip (delivered by phone)" in s for s in summaries)
