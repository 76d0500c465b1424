"""Patient and placer lookups right after the order's AA (issue 8.5): no sleep, every time.

Visibility can lag (and on SQLite occasionally answered empty for orders minutes old), so
the gateway finds orders through the order index, written before the NW's AA.
"""

from __future__ import annotations

import sqlite3

import pytest

from radflow.domain.definitions import OrderStatus
from radflow.infra.order_index_store import SqliteOrderIndex
from tests.gateways.hl7_support import Hl7Stack, hl7_stack  # noqa: F401

pytestmark = pytest.mark.integration
MSH = "MSH|^~\\&|{app}|GENHOSP|RADFLOW|RAD|20240301||{type}|{ctl}|P|2.5"


def _nw(ctl: str, mrn: str, placer: str, accession: str) -> bytes:
    obr = "|".join(["OBR", "1", f"{placer}^CPOE", "", "CTHEAD^CT head^L"] + [""] * 13 + [accession])
    return "\r".join([
        MSH.format(app="CPOE", type="ORM^O01", ctl=ctl),
        f"PID|1||{mrn}^^^GENHOSP^MR||Before^Bo||19820707|M",
        f"ORC|NW|{placer}^CPOE",
        obr,
    ]).encode()


def _a08(ctl: str, mrn: str, family: str) -> bytes:
    return "\r".join([
        MSH.format(app="HIS", type="ADT^A08", ctl=ctl),
        "EVN|A08|20240303110000",
        f"PID|1||{mrn}^^^GENHOSP^MR||{family}^Bo||19820707|M",
    ]).encode()


def _a40(ctl: str, old: str, new: str) -> bytes:
    return "\r".join([
        MSH.format(app="HIS", type="ADT^A40^ADT_A39", ctl=ctl),
        "EVN|A40|20240303110000",
        f"PID|1||{new}^^^GENHOSP^MR||Merged^Mo||19820707|M",
        f"MRG|{old}^^^GENHOSP^MR",
    ]).encode()


async def test_a08_right_after_the_nw_reaches_the_order_every_time(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    missed = []
    for i in range(50):
        mrn, acc = f"LM{i}{s.tag}", f"LA{i}{s.tag}"
        acks = await s.send(_nw(f"LN{i}-{s.tag}", mrn, f"LP{i}{s.tag}", acc), _a08(f"LU{i}-{s.tag}", mrn, "Updated"))
        assert [a.code for a in acks] == ["AA", "AA"], [a.text for a in acks]
        if (await s.state(acc)).order.patient.name.family != "Updated":
            missed.append(acc)
    assert missed == []


async def test_placer_lookup_right_after_the_nw(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    for i in range(20):
        placer, acc = f"QP{i}{s.tag}", f"QA{i}{s.tag}"
        cancel = "\r".join([MSH.format(app="CPOE", type="ORM^O01", ctl=f"QC{i}-{s.tag}"), f"ORC|CA|{placer}^CPOE"])
        acks = await s.send(_nw(f"QN{i}-{s.tag}", f"QM{i}{s.tag}", placer, acc), cancel.encode())
        assert [a.code for a in acks] == ["AA", "AA"], [a.text for a in acks]
        assert (await s.state(acc)).status == OrderStatus.CANCELLED


async def test_merge_right_after_the_orders_reaches_every_open_one(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    old, new = f"MO{s.tag}", f"MN{s.tag}"
    accs = [f"MA{i}{s.tag}" for i in range(8)]
    nws = [_nw(f"MW{i}-{s.tag}", old, f"MP{i}{s.tag}", acc) for i, acc in enumerate(accs)]
    acks = await s.send(*nws, _a40(f"MM-{s.tag}", old, new))
    assert [a.code for a in acks] == ["AA"] * 9
    for acc in accs:
        state = await s.state(acc)
        assert state.order.patient.mrn == new and [p.mrn for p in state.previous_patients] == [old]
    # The index followed the merge: the survivor's orders are found at once, the old MRN has none.
    assert sorted(await s.service.open_orders_of_patient(new)) == sorted(accs)
    [update] = await s.send(_a08(f"MU-{s.tag}", new, "Afterwards"))
    assert update.code == "AA"
    for acc in accs:
        assert (await s.state(acc)).order.patient.name.family == "Afterwards"


async def test_closed_orders_are_skipped_and_finished_ones_leave_the_index(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    mrn = f"CM{s.tag}"
    accs = [f"CA{i}{s.tag}" for i in range(3)]
    acks = await s.send(*(_nw(f"CW{i}-{s.tag}", mrn, f"CP{i}{s.tag}", a) for i, a in enumerate(accs)))
    assert [a.code for a in acks] == ["AA"] * 3
    cancel = "\r".join([MSH.format(app="CPOE", type="ORM^O01", ctl=f"CC-{s.tag}"), f"ORC|CA|CP1{s.tag}^CPOE"])
    assert [a.code for a in await s.send(cancel.encode())] == ["AA"]
    await s.service.handle(accs[2]).terminate("test: the order's workflow has finished")

    assert await s.service.open_orders_of_patient(mrn) == [accs[0]]
    key = f"mrn:{mrn}"
    # The cancelled order is still running (retention) and stays; the finished one is gone.
    assert await s.service._index_lookup([key]) == {key: accs[:2]}
    [update] = await s.send(_a08(f"CU-{s.tag}", mrn, "Changed"))
    assert update.code == "AA"
    cancelled = await s.state(accs[1])
    assert cancelled.order.patient.name.family == "Before" and cancelled.exceptions == 0


async def test_an_nw_whose_index_row_cannot_be_written_gets_ae_and_its_resend_aa(hl7_stack: Hl7Stack) -> None:
    """The index is the configured SQLite file; another process holds its write lock past the busy timeout."""
    s = hl7_stack
    s.service.index_store = SqliteOrderIndex(s.settings.order_index_db_path(), busy_timeout_s=0.3)
    mrn, placer, acc = f"LKM{s.tag}", f"LKP{s.tag}", f"LKA{s.tag}"
    other = sqlite3.connect(s.settings.order_index_db_path(), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    [refused] = await s.send(_nw(f"LK1-{s.tag}", mrn, placer, acc))
    assert refused.code == "AE", refused.text  # retryable: nothing was acknowledged
    other.execute("ROLLBACK")
    [resent] = await s.send(_nw(f"LK1-{s.tag}", mrn, placer, acc))
    assert resent.code == "AA", resent.text
    assert await s.service.open_orders_of_patient(mrn) == [acc]
    assert await s.service.accession_for_placer(placer, f"{placer}^CPOE") == acc
