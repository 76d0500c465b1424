"""PatientID as an HMAC over MLLP: new orders and merges carry the token, orders from before the
key stay findable during the transition, and the clear MRN never becomes a search attribute again."""

from __future__ import annotations

import os
import sqlite3

import pytest

from radflow.service.order_search import OrderFilter, search_orders
from radflow.service.patient_search import MrnHasher
from tests.gateways.hl7_support import Hl7Stack, hl7_stack  # noqa: F401
from tests.gateways.test_hl7_gateway_merge import _a40, _nw

pytestmark = pytest.mark.integration


async def _found(s: Hl7Stack, mrn: str, expected: int) -> list[tuple[str, str]]:
    for _ in range(100):
        page = await search_orders(s.service, OrderFilter(patient=mrn))
        if len(page.orders) >= expected:
            break
    return sorted((o.accession, o.patient_id) for o in page.orders)


async def test_tokens_on_start_and_merge_and_the_transition_window(hl7_stack: Hl7Stack) -> None:
    s = hl7_stack
    old, new = f"HOLD{s.tag}", f"HNEW{s.tag}"
    [before] = await s.send(_nw(s, 1, old))  # started before the key was configured: PatientID is the MRN
    assert before.code == "AA"
    assert await s.count(f"PatientID = '{old}'", 1) == 1

    hasher = MrnHasher(os.urandom(32), include_clear=True)
    s.service.mrn_hasher = hasher
    [after] = await s.send(_nw(s, 2, old))
    assert after.code == "AA"
    assert await s.count(f"PatientID = '{hasher.token(old)}'", 1) == 1
    assert await s.count(f"PatientID = '{old}'", 1) == 1  # only the order from before
    acc1, acc2 = f"AM1{s.tag}", f"AM2{s.tag}"
    assert await _found(s, old, 2) == [(acc1, old), (acc2, old)]  # both forms asked for
    assert sorted(await s.service.open_orders_of_patient(old)) == [acc1, acc2]

    [merge] = await s.send(_a40(s, old, new, f"A40H-{s.tag}"))
    assert merge.code == "AA"
    for acc in (acc1, acc2):
        assert (await s.wait_for(acc, lambda st: st.order.patient.mrn == new)).order.patient.mrn_token == hasher.token(new)
    # Both orders, the one from before the key included, now carry the survivor's token, never its MRN.
    assert await s.count(f"PatientID = '{hasher.token(new)}'", 2) == 2
    assert (await s.client.count_workflows(f"PatientID = '{new}'")).count == 0
    assert await _found(s, new, 2) == [(acc1, new), (acc2, new)]
    # The order index keys the survivor by its token too: its MRN is in no index row. The order from
    # before the key left the clear key of the retired MRN (the merge moved it).
    assert sorted(await s.service.open_orders_of_patient(new)) == [acc1, acc2]
    rows = repr(sqlite3.connect(s.settings.order_index_db_path()).execute("SELECT key FROM order_index").fetchall())
    assert new not in rows and f"mrn:{hasher.token(new)}" in rows and f"'mrn:{old}'" not in rows

    # After the transition (RADFLOW_SEARCH_CLEAR_MRN=false) only tokens are asked for.
    s.service.mrn_hasher = MrnHasher(hasher._key, include_clear=False)
    assert await s.count(f"PatientID = '{old}'", 0) == 0
    assert await _found(s, new, 2) == [(acc1, new), (acc2, new)]
