"""Issue 8: messages a resend-until-AA sender could never get past. Each must be answered AR
with the reason (never AE "retry", never a closed connection), must not create an order,
and the next valid message on the same connection must still be answered AA."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pytest
from temporalio.service import RPCError, RPCStatusCode

from radflow.domain.definitions import order_workflow_id
from radflow.gateways.mllp import frame
from tests.gateways.hl7_support import Hl7Stack, ack_of, hl7_stack  # noqa: F401

pytestmark = pytest.mark.integration


def _nw(tag: str, ctl: str, *, version: str = "2.3", mrn: str = "", acc: str = "", ae: str = "", proc: str = "CTHEAD^CT head^L",
        name: str = "Hostile^Hal", obx5: str = "") -> str:
    mrn = mrn or f"HM{tag}"
    acc = acc or f"HA{ctl[:4]}{tag}"
    obr = ["OBR", "1", f"HP{ctl}{tag}^CPOE", "", proc] + [""] * 13 + [acc, "", "", ae]
    segments = [
        f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||ORM^O01|{ctl}-{tag}|P|{version}",
        f"PID|1||{mrn}^^^GENHOSP^MR||{name}",
        f"ORC|NW|HP{ctl}{tag}^CPOE",
        "|".join(obr),
    ]
    if obx5:
        segments.append(f"OBX|1|TX|X||{obx5}")
    return "\r".join(segments)


@dataclass
class Case:
    name: str
    build: Callable[[str], bytes]  # tag -> frame payload
    reason: str  # expected in MSA-3
    accession: str = ""  # an order that must NOT exist afterwards ("" = none to check)


CASES = [
    Case("MSH-12 with a non-ASCII byte", lambda t: _nw(t, "V8BIT", version="2.5\xb2").encode("latin-1"), "unsupported HL7 version"),
    Case("bare MSH line", lambda t: b"MSH\rPID|1||X", "encoding characters"),
    Case("superscript digit in MSH-12", lambda t: _nw(t, "VSUP", version="2.\u00b3").encode(), "unsupported HL7 version"),
    Case("4,301 digits in MSH-12", lambda t: _nw(t, "VLONG", version="2." + "3" * 4301).encode(), "unsupported HL7 version"),
    Case("NUL byte in the MRN", lambda t: _nw(t, "NULMRN", mrn=f"M\x00{t}", acc=f"NM{t}").encode(), "control character U+0000",
         "NM{t}"),
    Case("NUL byte in the accession", lambda t: _nw(t, "NULACC", acc=f"RN\x00{t}").encode(), "control character U+0000",
         "RN\x00{t}"),
    Case("NUL byte in the patient name", lambda t: _nw(t, "NULNAME", name="Nu\x00ll^Ed", acc=f"NN{t}").encode(), "U+0000",
         "NN{t}"),
    Case("60,000-character station AE", lambda t: _nw(t, "LONGAE", ae="A" * 60_000, acc=f"LA{t}").encode(), "station AE title",
         "LA{t}"),
    Case("2,000-character accession", lambda t: _nw(t, "LONGACC", acc="A" * 2000).encode(), "accession number has 2000"),
    Case("NW without a procedure", lambda t: _nw(t, "NOPROC", proc="", acc=f"NP{t}").encode(), "without a procedure", "NP{t}"),
    Case("300,000 repetitions in OBX-5", lambda t: _nw(t, "REPS", obx5="~" * 300_000, acc=f"RP{t}").encode(),
         "more than the limit of 50000", "RP{t}"),
    Case("1,001 repetitions in OBX-5", lambda t: _nw(t, "REPS2", obx5="~" * 1000, acc=f"RR{t}").encode(),
         "1001 repetitions", "RR{t}"),
    Case("a segment of 60,000 fields", lambda t: (_nw(t, "FIELDS", acc=f"RF{t}") + "\rZZZ|" + "|" * 60_000).encode(),
         "delimiters", "RF{t}"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_message_is_ar_and_the_connection_goes_on(hl7_stack: Hl7Stack, case: Case) -> None:
    s = hl7_stack
    good = _nw(s.tag, "GOOD", acc=f"HG{s.tag}").encode()
    started = time.monotonic()
    bad_raw, good_raw = await s.send_raw(frame(case.build(s.tag)) + frame(good), 2)
    bad = ack_of(bad_raw)
    assert bad.code == "AR", bad
    assert case.reason in bad.text
    assert time.monotonic() - started < 5  # refused at the edge, not after Temporal timeouts
    assert ack_of(good_raw).code == "AA"
    if case.accession:
        accession = case.accession.format(t=s.tag)
        with pytest.raises(RPCError) as err:
            await s.client.get_workflow_handle(order_workflow_id(accession)).describe()
        assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_quotes_in_identifiers_are_values_not_query_syntax(hl7_stack: Hl7Stack) -> None:
    """MRN and placer number end up quoted in lookups: quotes must neither fail them (AE) nor widen them."""
    s = hl7_stack
    mrn, placer, acc = f"Q'\"M{s.tag}", f"P'Q{s.tag}", f"QA{s.tag}"
    nw = _nw(s.tag, "QNW", mrn=mrn, acc=acc).replace(f"HPQNW{s.tag}^CPOE", f"{placer}^CPOE")
    adt = "\r".join([f"MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240301090000||ADT^A08|QADT-{s.tag}|P|2.3",
                     f"PID|1||{mrn}^^^GENHOSP^MR||Renamed^Rita"])
    ca = "\r".join([f"MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240301090000||ORM^O01|QCA-{s.tag}|P|2.3",
                    f"PID|1||{mrn}^^^GENHOSP^MR", f"ORC|CA|{placer}^CPOE"])
    codes = [a.code for a in await s.send(nw.encode(), adt.encode(), ca.encode())]
    assert codes == ["AA", "AA", "AA"]
    state = await s.state(acc)
    assert state.order.patient.mrn == mrn and state.order.patient.name.family == "Renamed"
