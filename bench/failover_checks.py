"""What the failover run checks once the orders settled: every order once, at its final state, at every sink.

Orders are found twice, independently: from Temporal visibility (every order workflow of the
run's own server) and from what the senders learned (the accession the worklist gave the
modality). Each order is then read through the API (its exact state, by query) and grouped by
patient MRN, which the senders chose uniquely per order:
  lost        the NW was acknowledged but no order exists for its patient
  duplicated  more than one order for one patient (a resend that created a second order)
  stuck       not at the expected final state (DELIVERED, no lane waiting for an operator)
  wrong       at its final state but not exactly once: NEW_ORDER, final REPORT, MPPS start or
              completion applied more or less than once, or the study's instance count off
Sinks (at-least-once, so copies are counted, not errors): ORUs per accession at the EHR,
DiagnosticReport / ServiceRequest resources and report versions at the FHIR server, instances
received by the archive. A second *resource* for one accession at the FHIR server is an error.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

import httpx
from temporalio.client import Client

from radflow.domain import definitions as d


@dataclass
class OrderTrace:
    """One order as the senders drove it."""

    i: int
    mrn: str
    placer: str
    nw_acked: bool = False
    accession: str = ""
    study_uid: str = ""
    sop_uids: list[str] = field(default_factory=list)
    worklist_items: int = 0  # items the worklist listed for the patient (1 expected)
    done: bool = False  # ORU F acknowledged: the senders did everything
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step as the senders saw it
    error: str = ""  # why the senders gave up


@dataclass
class Findings:
    orders: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    sender_failures: list[str] = field(default_factory=list)
    unmatched: int = 0  # UnmatchedItem workflows (a study or MPPS that found no order)
    ehr_undelivered: list[str] = field(default_factory=list)
    ehr_extra_copies: int = 0
    ehr_orders_with_copies: int = 0
    fhir_missing: list[str] = field(default_factory=list)
    fhir_duplicate_resources: list[str] = field(default_factory=list)
    fhir_report_versions: int = 0
    archive_missing: list[str] = field(default_factory=list)
    archive_extra_receptions: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.wrong or self.sender_failures or self.unmatched
                    or self.ehr_undelivered or self.fhir_missing or self.fhir_duplicate_resources
                    or self.archive_missing)


async def workflow_ids(client: Client, workflow_type: str) -> set[str]:
    """Visibility is eventually consistent (and SQLite visibility has answered empty pages):
    list until two listings a moment apart agree, keeping the union."""
    seen: set[str] = set()
    previous = -1
    for _ in range(10):
        ids = {wf.id async for wf in client.list_workflows(f"WorkflowType = '{workflow_type}'", page_size=1000)}
        seen |= ids
        if len(ids) == previous:
            break
        previous = len(ids)
        await asyncio.sleep(1.0)
    return seen


def _count(entries: list[dict], kind: str) -> int:
    return sum(1 for e in entries if e.get("kind") == kind and not e.get("exception"))


async def check(client: Client, api, traces: list[OrderTrace], instances: int, ehr: collections.Counter[str],
                fhir_base: str, orthanc) -> Findings:  # noqa: ANN001 - ApiReader, Orthanc
    f = Findings(orders=len(traces))
    f.sender_failures = [f"{t.mrn}: {t.error}" for t in traces if t.error]
    accessions = {d.accession_from_workflow_id(w) or w for w in await workflow_ids(client, d.ORDER_WORKFLOW)}
    accessions |= {t.accession for t in traces if t.accession}
    f.unmatched = len(await workflow_ids(client, d.UNMATCHED_WORKFLOW))

    orders: dict[str, dict] = {}
    timelines: dict[str, list[dict]] = {}
    sem = asyncio.Semaphore(8)

    async def read(acc: str) -> None:
        async with sem:
            orders[acc] = await api.order(acc)
            timelines[acc] = await api.timeline(acc)

    await asyncio.gather(*(read(a) for a in sorted(accessions)))
    by_mrn: dict[str, list[str]] = collections.defaultdict(list)
    for acc, order in orders.items():
        by_mrn[order["patient"]["mrn"]].append(acc)
        f.statuses[order["status"]] += 1

    for t in traces:
        found = by_mrn.get(t.mrn, [])
        if t.nw_acked and not found:
            f.lost.append(t.mrn)
        if len(found) > 1 or t.worklist_items > 1:
            f.duplicated.append(f"{t.mrn}: {sorted(found)} (worklist items {t.worklist_items})")
        if not found:
            continue
        acc = found[0]
        order, entries = orders[acc], timelines[acc]
        if order["status"] != "DELIVERED" or order["flags"]["needs_attention"]:
            f.stuck.append(f"{acc}: {order['status']} attention={order['flags']['attention_reason']!r}")
            continue
        problems = [f"{kind} x{n}" for kind in ("NEW_ORDER", "REPORT", "PROCEDURE_STARTED", "PROCEDURE_COMPLETED")
                    if (n := _count(entries, kind)) != 1]
        if order["study"]["instance_count"] != instances:
            problems.append(f"instances {order['study']['instance_count']}")
        if problems:
            f.wrong.append(f"{acc}: {', '.join(problems)}")

    delivered = [t for t in traces if t.accession]
    for t in delivered:
        copies = ehr.get(t.accession, 0)
        if copies == 0:
            f.ehr_undelivered.append(t.accession)
        elif copies > 1:
            f.ehr_extra_copies += copies - 1
            f.ehr_orders_with_copies += 1
    await _check_fhir(f, fhir_base, [t.accession for t in delivered])
    receptions = orthanc.receptions()
    f.archive_extra_receptions = sum(n - 1 for n in receptions.values() if n > 1)
    for t in delivered:
        if any(receptions.get(uid, 0) == 0 for uid in t.sop_uids) or \
                await asyncio.to_thread(orthanc.study_instance_count, t.study_uid) != instances:
            f.archive_missing.append(t.accession)
    return f


async def _check_fhir(f: Findings, base: str, accessions: list[str]) -> None:
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as http:

        async def one(acc: str) -> None:
            async with sem:
                for kind in ("ServiceRequest", "DiagnosticReport"):
                    r = await http.get(f"/{kind}", params={"identifier": acc})
                    r.raise_for_status()
                    found = [e["resource"] for e in r.json().get("entry", [])]
                    if not found:
                        f.fhir_missing.append(f"{acc} {kind}")
                    elif len(found) > 1:
                        f.fhir_duplicate_resources.append(f"{acc} {kind} x{len(found)}")
                    if kind == "DiagnosticReport" and found:
                        h = await http.get(f"/DiagnosticReport/{found[0]['id']}/_history")
                        h.raise_for_status()
                        f.fhir_report_versions += len(h.json().get("entry", []))

        await asyncio.gather(*(one(a) for a in accessions))
