"""/exceptions and /orders/{accession}/link-study through the real app, worker and dev server."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from radflow.domain.definitions import EventSource, OrderStatus
from radflow.service.ordering import OrderService
from radflow.infra.settings import Settings
from radflow.service.unmatched import record_unmatched
from tests.factories import make_order, new_accession
from tests.stack import stack_settings
from tests.waiting import eventually


@pytest.fixture
def settings(task_queue: str, tmp_path: Path) -> Settings:
    return stack_settings(task_queue, data_dir=tmp_path)  # no spool here: counts come from the item


def study_uid() -> str:
    return f"2.25.{uuid.uuid4().int}"


async def open_keys(api: httpx.AsyncClient, kind: str | None = None) -> set[str]:
    r = await api.get("/exceptions", params={"kind": kind} if kind else {})
    assert r.status_code == 200, r.text
    return {i["key"] for i in r.json()["items"]}


async def test_link_study_from_the_items_counts(api: httpx.AsyncClient, service: OrderService, settings: Settings) -> None:
    uid = study_uid()
    await record_unmatched(service.client, "study", uid, {"instance_count": 42, "series_count": 3, "modality": "MR",
                                                          "accession": "TYPO1"},
                           reason="no order with accession TYPO1", task_queue=settings.task_queue)
    assert uid in await eventually(lambda: open_keys(api, "study"), lambda keys: uid in keys)
    assert uid not in await open_keys(api, "mpps")

    order = make_order(new_accession("API"))
    await service.start_order(order, EventSource.HL7, "ORM1")
    r = await api.post(f"/orders/{order.accession}/link-study", json={"study_instance_uid": uid})
    assert r.status_code == 200, r.text
    assert r.json() == {"accession": order.accession, "study_instance_uid": uid, "series_count": 3,
                        "instance_count": 42, "status": "ACQUIRED", "resolved": True}
    state = await service.get_state(order.accession)
    assert state.study.instance_count == 42 and state.study.study_instance_uid == uid
    one = (await api.get(f"/exceptions/study/{uid}")).json()
    assert one["resolved"] and one["linked_accession"] == order.accession and one["details"]["accession"] == "TYPO1"
    assert uid not in await eventually(lambda: open_keys(api), lambda keys: uid not in keys)


async def test_dismiss_and_errors(api: httpx.AsyncClient, service: OrderService, settings: Settings) -> None:
    uid = study_uid()
    await record_unmatched(service.client, "study", uid, {"instance_count": 1}, task_queue=settings.task_queue)
    r = await api.post(f"/exceptions/study/{uid}/dismiss", json={"note": "phantom scan"})
    assert r.status_code == 200 and r.json()["resolved"] and r.json()["linked_accession"] == ""

    order = make_order(new_accession("API"))
    await service.start_order(order, EventSource.HL7, "ORM1")
    assert (await api.post(f"/orders/{order.accession}/link-study", json={"study_instance_uid": uid})).status_code == 409
    assert (await api.post(f"/orders/{order.accession}/link-study", json={"study_instance_uid": study_uid()})).status_code == 404
    other = study_uid()
    await record_unmatched(service.client, "study", other, {"instance_count": 2}, task_queue=settings.task_queue)
    assert (await api.post("/orders/NO-SUCH-ORDER/link-study", json={"study_instance_uid": other})).status_code == 404
    assert (await api.get(f"/exceptions/study/{study_uid()}")).status_code == 404
    assert (await api.get("/exceptions", params={"kind": "bogus"})).status_code == 422
    assert (await service.get_state(order.accession)).status == OrderStatus.SCHEDULED


async def test_link_study_answers_2xx_once_the_order_has_it(api: httpx.AsyncClient, service: OrderService, settings: Settings,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # The order is told first (real worker); closing the item then fails (injected): the
    # answer must not be a 5xx ("nothing applied"), and linking again closes the item.
    import radflow.api.routes.exceptions as routes
    from radflow.service.ordering import TemporalUnavailable

    uid = study_uid()
    await record_unmatched(service.client, "study", uid, {"instance_count": 5, "series_count": 1, "modality": "CT"},
                           reason="no order", task_queue=settings.task_queue)
    order = make_order(new_accession("API"))
    await service.start_order(order, EventSource.HL7, "ORM1")
    real = routes.resolve_unmatched

    async def down(*args, **kwargs):
        raise TemporalUnavailable("injected: unmatched item unreachable")

    monkeypatch.setattr(routes, "resolve_unmatched", down)
    first = await api.post(f"/orders/{order.accession}/link-study", json={"study_instance_uid": uid})
    assert first.status_code == 200, first.text
    assert first.json()["resolved"] is False and first.json()["status"] == "ACQUIRED"
    assert (await service.get_state(order.accession)).study.study_instance_uid == uid
    monkeypatch.setattr(routes, "resolve_unmatched", real)
    again = await api.post(f"/orders/{order.accession}/link-study", json={"study_instance_uid": uid})
    assert again.status_code == 200 and again.json()["resolved"] is True, again.text
