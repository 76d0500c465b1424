"""GET /orders and the search attributes behind it (Temporal visibility, eventually consistent)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from temporalio.client import Client

from radflow.domain.definitions import EventSource
from radflow.domain.order import EventKind
from radflow.service.ordering import OrderService
from tests.factories import event, make_order
from tests.waiting import eventually


def _mrn() -> str:
    return "MRN" + uuid.uuid4().hex[:10].upper()


async def _ids(client: Client, query: str) -> list[str]:
    return [wf.id async for wf in client.list_workflows(query)]


async def _listed(api: httpx.AsyncClient, want: int, **params: str) -> list[dict]:
    resp = await eventually(lambda: api.get("/orders", params=params), lambda r: len(r.json().get("orders", [])) == want)
    assert resp.status_code == 200, resp.text
    return resp.json()["orders"]


async def test_search_attributes_list_by_accession_and_status_in_temporal(client: Client, service: OrderService, worker: None) -> None:
    """Acceptance 6: orders are found through Temporal visibility by AccessionNumber and OrderStatus."""
    mrn = _mrn()
    kept, cancelled = make_order(mrn=mrn), make_order(mrn=mrn)
    for order in (kept, cancelled):
        await service.start_order(order, EventSource.HL7)
    await service.send_event(cancelled.accession, event(EventKind.CANCEL))

    by_acc = await eventually(lambda: _ids(client, f"AccessionNumber = '{kept.accession}'"), lambda r: len(r) == 1)
    assert by_acc == [f"order-{kept.accession}"]
    by_status = await eventually(lambda: _ids(client, f"OrderStatus = 'CANCELLED' AND PatientID = '{mrn}'"), lambda r: len(r) == 1)
    assert by_status == [f"order-{cancelled.accession}"]
    scheduled = await eventually(lambda: _ids(client, f"OrderStatus = 'SCHEDULED' AND PatientID = '{mrn}'"), lambda r: len(r) == 1)
    assert scheduled == [f"order-{kept.accession}"]


async def test_list_filters(api: httpx.AsyncClient, service: OrderService) -> None:
    mrn = _mrn()
    ct = make_order(mrn=mrn, station="CT01", start=datetime(2031, 3, 1, 9, tzinfo=UTC))
    ct2 = make_order(mrn=mrn, station="CT02", start=datetime(2031, 3, 2, 9, tzinfo=UTC))
    mr = make_order(mrn=mrn, station="MR01", start=datetime(2031, 3, 3, 9, tzinfo=UTC))
    mr.schedule.modality = "MR"
    unscheduled = make_order(mrn=mrn, scheduled=False)
    for order in (ct, ct2, mr, unscheduled):
        await service.start_order(order, EventSource.HL7)
    await _listed(api, 4, patient=mrn)  # all visible before the narrower filters are checked

    assert {o["accession"] for o in await _listed(api, 2, patient=mrn, modality="CT")} == {ct.accession, ct2.accession}
    [row] = await _listed(api, 1, patient=mrn, station="MR01")
    assert row["accession"] == mr.accession and row["modality"] == "MR" and row["status"] == "SCHEDULED"
    assert row["patient_id"] == mrn and row["scheduled_start"].startswith("2031-03-03T09:00:00") and row["running"]
    [row] = await _listed(api, 1, patient=mrn, status="ORDERED")
    assert row["accession"] == unscheduled.accession and row["scheduled_start"] is None
    window = await _listed(api, 1, patient=mrn, scheduled_from="2031-03-02T00:00:00Z", scheduled_to="2031-03-02T23:59:59Z")
    assert [o["accession"] for o in window] == [ct2.accession]
    since = await _listed(api, 2, patient=mrn, scheduled_from="2031-03-02T00:00:00Z")
    assert {o["accession"] for o in since} == {ct2.accession, mr.accession}
    [row] = await _listed(api, 1, accession=ct.accession)
    assert row["station_ae"] == "CT01"
    assert await _listed(api, 0, patient=mrn, status="DELIVERED") == []


async def test_list_pages_with_next_page_token(api: httpx.AsyncClient, service: OrderService) -> None:
    mrn = _mrn()
    orders = [make_order(mrn=mrn) for _ in range(5)]
    for order in orders:
        await service.start_order(order, EventSource.HL7)
    await _listed(api, 5, patient=mrn)

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params = {"patient": mrn, "page_size": "2"} | ({"next_page_token": token} if token else {})
        body = (await api.get("/orders", params=params)).json()
        pages += 1
        assert len(body["orders"]) <= 2
        seen += [o["accession"] for o in body["orders"]]
        token = body["next_page_token"]
        if not token:
            break
        assert pages < 10
    assert sorted(seen) == sorted(o.accession for o in orders)  # every order once, none twice
    assert pages >= 3


async def test_list_bad_filters_are_422(api: httpx.AsyncClient) -> None:
    for params in [
        {"status": "BOGUS"},
        {"scheduled_from": "2031-03-02T00:00:00Z", "scheduled_to": "2031-03-01T00:00:00Z"},
        {"scheduled_from": "yesterday"},
        {"scheduled_from": "1700000000"},  # a number is not the ISO 8601 the schema documents (was read as a Unix time)
        {"scheduled_to": "-1.07e-194"},
        {"page_size": "0"},
        {"page_size": "100000"},
        {"next_page_token": "***not base64***"},
    ]:
        resp = await api.get("/orders", params=params)
        assert resp.status_code == 422, (params, resp.text)


async def test_list_is_scoped_to_the_deployment_task_queue(api: httpx.AsyncClient, service: OrderService, client: Client) -> None:
    mrn = _mrn()
    other = OrderService(client, task_queue=service.task_queue + "-other")
    mine, theirs = make_order(mrn=mrn), make_order(mrn=mrn)
    await service.start_order(mine, EventSource.HL7)
    await other.start_order(theirs, EventSource.HL7)  # never runs: no worker on that queue

    # Both are in visibility before the API is asked, so a missing scope would show two.
    both = await eventually(lambda: _ids(client, f"PatientID = '{mrn}'"), lambda r: len(r) == 2)
    assert len(both) == 2
    rows = (await api.get("/orders", params={"patient": mrn})).json()["orders"]
    assert [r["accession"] for r in rows] == [mine.accession]
    await other.handle(theirs.accession).terminate("test cleanup")
