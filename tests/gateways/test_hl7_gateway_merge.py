"""ADT^A40 merge over MLLP (acceptance 3): every open order of the retired MRN moves to the survivor."""

from __future__ import annotations

import pytest

from radflow.domain.definitions import OrderStatus
from tests.gateways.hl7_support import Hl7Stack, hl7_stack  # noqa: F401

pytestmark = pytest.mark.integration


def _nw(s: Hl7Stack, n: int, mrn: str) -> bytes:
    obr = "|".join(["OBR", "1", f"PM{n}{s.tag}^CPOE", "", "CTHEAD^CT head^L"] + [""] * 13 + [f"AM{n}{s.tag}"])
    return "\r".join([
        f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|NWM{n}-{s.tag}|P|2.3",
        f"PID|1||{mrn}^^^GENHOSP^MR||Before^Merge||19820707|M",
        f"ORC|NW|PM{n}{s.tag}^CPOE",
        obr,
    ]).encode()


def _a40(s: Hl7Stack, old: str, new: str, ctl: str) -> bytes:
    return "\r".join([
        f"MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240303110000||ADT^A40^ADT_A39|{ctl}|P|2.5",
        "EVN|A40|20240303110000",
        f"PID|1||{new}^^^GENHOSP^MR||Testmerged^Casey||19820707|M",
        f"MRG|{old}^^^GENHOSP^MR",
    ]).encode()


async def test_a40_moves_both_open_orders_to_the_surviving_mrn(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    old, new, other = f"OLD{s.tag}", f"NEW{s.tag}", f"OTH{s.tag}"
    acks = await s.send(_nw(s, 1, old), _nw(s, 2, old), _nw(s, 3, other), _nw(s, 4, old))
    assert [a.code for a in acks] == ["AA"] * 4
    # A closed order of the old MRN is not re-keyed (and does not make the merge fail).
    cancel = f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301||ORM^O01|CAM-{s.tag}|P|2.3\rORC|CA|PM4{s.tag}^CPOE|AM4{s.tag}"
    [ca] = await s.send(cancel.encode())
    assert ca.code == "AA"
    assert await s.count(f"PatientID = '{old}'", 3) == 3

    ctl = f"A40-{s.tag}"
    [merge] = await s.send(_a40(s, old, new, ctl))
    assert merge.code == "AA" and merge.control_id == ctl

    for n in (1, 2):
        state = await s.state(f"AM{n}{s.tag}")
        assert state.order.patient.mrn == new
        assert state.order.patient.name.family == "Testmerged"
        assert [p.mrn for p in state.previous_patients] == [old]
        entry = [e for e in state.timeline if e.kind == "PATIENT_MERGED"]
        assert len(entry) == 1 and entry[0].control_id == f"{ctl}:AM{n}{s.tag}"
    assert (await s.state(f"AM3{s.tag}")).order.patient.mrn == other
    cancelled = await s.state(f"AM4{s.tag}")
    assert cancelled.status == OrderStatus.CANCELLED and cancelled.order.patient.mrn == old

    # Visibility follows: the survivor lists the two orders, the old MRN only the closed one.
    assert await s.count(f"PatientID = '{new}'", 2) == 2
    assert sorted(await s.service.open_orders_of_patient(new)) == [f"AM1{s.tag}", f"AM2{s.tag}"]

    # The same A40 resent: AA, nothing applied twice.
    [again] = await s.send(_a40(s, old, new, ctl))
    assert again.code == "AA"
    state = await s.state(f"AM1{s.tag}")
    assert len([e for e in state.timeline if e.kind == "PATIENT_MERGED"]) == 1 and len(state.previous_patients) == 1


async def test_a40_for_a_patient_without_orders_is_accepted(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    [merge] = await s.send(_a40(s, f"NOBODY{s.tag}", f"SOMEONE{s.tag}", f"A40E-{s.tag}"))
    assert merge.code == "AA"
