"""POST /bulk/orders/{action} on the real stack: the session dev server, a real worker whose HL7
delivery fails for real (EHR port closed), the app behind its guard with API keys."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from radflow.api.app import create_app
from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import EventKind, Procedure
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from tests.factories import event, make_order, report
from tests.waiting import eventually

SECRETS = {name: f"{name}-secret-{'y' * 20}" for name in ("reader", "operator")}
# The operator of a department also reads (GET /orders); roles are not cumulative.
KEYS = f"reader-client:reader:{SECRETS['reader']},operator-client:operator+reader:{SECRETS['operator']}"
AS_OPERATOR = {"Authorization": f"Bearer {SECRETS['operator']}"}


@pytest.fixture
def bulk_settings(settings: Settings, tmp_path) -> Settings:  # noqa: ANN001
    return settings.model_copy(update={"api_keys": SecretStr(KEYS), "audit_log": tmp_path / "audit.jsonl",
                                       "bulk_max_orders": 4})


@pytest.fixture
async def api(service: OrderService, bulk_settings: Settings, worker: None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(bulk_settings, service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://radflow.test",
                                 headers=AS_OPERATOR, timeout=60) as http:
        yield http


def station() -> str:
    return "BK" + uuid.uuid4().hex[:6].upper()


async def waiting_order(service: OrderService, at: str) -> str:
    """An order whose HL7 lane waits for an operator (its final report could not be delivered)."""
    order = make_order(station=at)
    await service.start_order(order, EventSource.HL7)
    await service.send_event(order.accession, event(EventKind.REPORT, report=report(ReportStatus.FINAL)))
    return order.accession


async def until_waiting(service: OrderService, accessions: list[str]) -> None:
    for acc in accessions:
        state = await eventually(lambda a=acc: service.get_state(a), lambda s: "hl7" in {n for n, lane in s.lanes.items()
                                                                                        if lane.attention}, timeout_s=30)
        assert state.lanes["hl7"].attention is not None, acc


async def until_visible(api: httpx.AsyncClient, at: str, count: int) -> None:
    async def fetch() -> int:
        return len((await api.get("/orders", params={"station": at, "needs_attention": "true"})).json()["orders"])

    assert await eventually(fetch, lambda n: n == count, timeout_s=20) == count


def operator_entries(state) -> list[str]:  # noqa: ANN001
    return [e.summary for e in state.timeline if "operator" in e.summary]


async def test_skip_by_lane_and_station_dry_run_then_real(api: httpx.AsyncClient, service: OrderService,
                                                          bulk_settings: Settings) -> None:
    here, elsewhere = station(), station()
    targets = sorted([await waiting_order(service, here) for _ in range(3)])
    quiet = make_order(station=here)  # same station, nothing waiting
    await service.start_order(quiet, EventSource.HL7)
    other = await waiting_order(service, elsewhere)
    await until_waiting(service, [*targets, other])
    await until_visible(api, here, 3)
    body = {"filter": {"station": here, "lane": "hl7"}, "note": "EHR down for the day"}

    dry = await api.post("/bulk/orders/skip", json={**body, "dry_run": True})
    assert dry.status_code == 200, dry.text
    got = dry.json()
    assert got["dry_run"] is True and got["matched"] == targets and got["results"] == []
    assert (got["done"], got["refused"], got["failed"]) == (0, 0, 0)
    for acc in targets:  # a dry run touches nothing
        state = await service.get_state(acc)
        assert state.lanes["hl7"].attention is not None and operator_entries(state) == []

    resp = await api.post("/bulk/orders/skip", json=body)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["matched"] == targets
    assert (got["done"], got["refused"], got["failed"]) == (3, 0, 0)
    assert {r["accession"]: (r["outcome"], r["status"]) for r in got["results"]} == {a: ("done", "COMPLETED") for a in targets}
    for acc in targets:
        state = await service.get_state(acc)
        assert not state.lanes["hl7"].attention
        assert any("chose skip (EHR down for the day)" in s and "operator-client" in s
                   for s in operator_entries(state)), operator_entries(state)
    # Only the matching orders were touched.
    assert (await service.get_state(other)).lanes["hl7"].attention is not None
    assert operator_entries(await service.get_state(quiet.accession)) == []
    # Each order acted on has its own audit line, with who and the outcome.
    lines = [json.loads(x) for x in bulk_settings.audit_log.read_text().splitlines()]
    per_order = [x for x in lines if x["action"] == "POST /bulk/orders/skip" and x["order"]]
    attempts = [x for x in per_order if x.get("phase") == "attempt"]
    outcomes = [x for x in per_order if x.get("phase") != "attempt"]
    assert sorted(x["order"] for x in attempts) == sorted(x["order"] for x in outcomes) == targets
    assert {(x["who"], x["outcome"]) for x in outcomes} == {("operator-client", 200)}
    assert {x["attempt"] for x in outcomes} == {x["id"] for x in attempts}  # each outcome names its attempt

    # Again: nothing waits any more, so nothing matches (whatever visibility still says).
    again = (await api.post("/bulk/orders/skip", json=body)).json()
    assert again["matched"] == [] and again["done"] == 0


async def test_retry_counts_refusals_and_applies_once_per_key(api: httpx.AsyncClient, service: OrderService) -> None:
    here = station()
    waiting = sorted([await waiting_order(service, here) for _ in range(2)])
    idle = make_order(station=here)
    await service.start_order(idle, EventSource.HL7)
    await until_waiting(service, waiting)

    async def visible() -> list[str]:
        return (await api.post("/bulk/orders/retry", json={"filter": {"station": here}, "dry_run": True})).json()["matched"]

    assert sorted(await eventually(visible, lambda m: len(m) == 3, timeout_s=20)) == sorted([*waiting, idle.accession])
    body = {"filter": {"station": here}, "note": "interface restarted"}
    key = {"Idempotency-Key": "bulk-" + uuid.uuid4().hex}
    got = (await api.post("/bulk/orders/retry", json=body, headers=key)).json()
    assert (got["done"], got["refused"], got["failed"]) == (2, 1, 0), got
    outcome = {r["accession"]: r for r in got["results"]}
    assert {a for a, r in outcome.items() if r["outcome"] == "done"} == set(waiting)
    assert outcome[idle.accession]["outcome"] == "refused" and "NEEDS_ATTENTION" in outcome[idle.accession]["detail"]
    # The same request again (a client retry): each order applies it once.
    await until_waiting(service, waiting)
    await api.post("/bulk/orders/retry", json=body, headers=key)
    for acc in waiting:
        retries = [s for s in operator_entries(await service.get_state(acc)) if "chose retry (interface restarted)" in s]
        assert len(retries) == 1, retries


async def test_cancel_refuses_more_than_the_cap_and_checks_time_ranges(api: httpx.AsyncClient, service: OrderService) -> None:
    here = station()
    first = make_order(station=here)
    await service.start_order(first, EventSource.HL7)
    await eventually(lambda: service.get_state(first.accession), lambda s: s is not None)
    middle = datetime.now(UTC)
    later = [make_order(station=here) for _ in range(4)]
    for order in later:
        await service.start_order(order, EventSource.HL7)

    async def count() -> int:
        return len((await api.get("/orders", params={"station": here})).json()["orders"])

    await eventually(count, lambda n: n == 5, timeout_s=20)
    too_many = await api.post("/bulk/orders/cancel", json={"filter": {"station": here}, "note": "room closed"})
    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["detail"][0]["type"] == "too_many_orders" and "more than 4" in too_many.text
    assert [(await service.get_state(o.accession)).status.value for o in [first, *later]] == ["SCHEDULED"] * 5

    no_note = await api.post("/bulk/orders/cancel", json={"filter": {"station": here}})
    assert no_note.status_code == 422 and "note" in no_note.text
    no_filter = await api.post("/bulk/orders/cancel", json={"filter": {}, "note": "x", "dry_run": True})
    assert no_filter.status_code == 422 and "at least one filter" in no_filter.text

    # Created before `middle`: only the first (time ranges are checked on each order's exact state).
    body = {"filter": {"station": here, "status": "SCHEDULED", "created_to": middle.isoformat()}, "note": "room closed"}
    with_cap = await api.post("/bulk/orders/cancel", json=body)
    assert with_cap.status_code == 422  # still 5 candidates: the time range narrows only after visibility
    await service.send_event(later[0].accession, event(EventKind.CANCEL, reason="other"))
    await eventually(count_status(api, here, "SCHEDULED"), lambda n: n == 4, timeout_s=20)
    got = (await api.post("/bulk/orders/cancel", json=body)).json()
    assert got["matched"] == [first.accession] and got["done"] == 1, got
    assert len(got["not_matching"]) == 3 and all(w.startswith("created at") for w in got["not_matching"].values())
    assert (await service.get_state(first.accession)).status.value == "CANCELLED"
    assert [(await service.get_state(o.accession)).status.value for o in later[1:]] == ["SCHEDULED"] * 3


async def test_procedure_filter_narrows_candidates_below_the_cap(api: httpx.AsyncClient, service: OrderService) -> None:
    here = station()
    heads = [make_order(station=here) for _ in range(5)]  # CTHEAD: over the cap of 4 on their own
    chest = make_order(station=here)
    chest.procedure = Procedure(code="XRCHEST", text="XR chest 2 views", coding_system="L")
    for order in [*heads, chest]:
        await service.start_order(order, EventSource.HL7)
    body = {"filter": {"station": here, "procedure": "XRCHEST"}, "dry_run": True}

    async def matched() -> httpx.Response:
        return await api.post("/bulk/orders/cancel", json=body)

    # ProcedureCode (search attribute) narrows the candidates in visibility, not only the exact check.
    # (Until each order's first task upserted it, an order without one is a candidate too.)
    resp = await eventually(matched, lambda r: r.status_code == 200 and r.json()["candidates"] == 1, timeout_s=20)
    assert resp.status_code == 200, resp.text
    assert resp.json()["candidates"] == 1 and resp.json()["matched"] == [chest.accession]


def count_status(api: httpx.AsyncClient, at: str, status: str):  # noqa: ANN201
    async def fetch() -> int:
        return len((await api.get("/orders", params={"station": at, "status": status})).json()["orders"])

    return fetch


async def test_bulk_needs_the_operator_role(api: httpx.AsyncClient) -> None:
    body = {"filter": {"station": station()}, "dry_run": True}
    anonymous = await api.post("/bulk/orders/retry", json=body, headers={"Authorization": ""})
    reader = await api.post("/bulk/orders/retry", json=body, headers={"Authorization": f"Bearer {SECRETS['reader']}"})
    operator = await api.post("/bulk/orders/retry", json=body)
    assert (anonymous.status_code, reader.status_code, operator.status_code) == (401, 403, 200)
    assert "operator" in reader.text
    unknown = await api.post("/bulk/orders/delete", json=body)
    assert unknown.status_code == 422
