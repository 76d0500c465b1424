"""FHIR search for the read facade: parameter parsing, candidate orders, exact filtering.

Candidates come from an exact lookup (accession) or Temporal visibility (placer number,
patient, everything), which is eventually consistent: an order created a moment ago may
be missing from a patient search but is always found by its accession. Every candidate
is then read from its read model (the memo its workflow keeps current, no worker needed;
radflow/service/order_read.py) or, for DiagnosticReport (the report text is not in the read
model), by workflow query, and filtered on the mapped resource.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from urllib.parse import unquote

from fastapi import Request

from radflow.api.fhir_http import FhirError
from radflow.api.text_checks import unsafe_character
from radflow.domain import definitions as d
from radflow.domain.fhir import FhirMappingConfig
from radflow.domain.fhir.config import DICOM_UID_SYSTEM, uid_from_value
from radflow.domain.fhir.ids import accession_from_id
from radflow.domain.order import OrderState
from radflow.service.order_read import Consistency, read_order
from radflow.service.ordering import OrderNotFound, OrderService

COMMON = {"_count", "_format"}
SERVICE_REQUEST_PARAMS = {"identifier", "patient", "subject", "patient:identifier", "subject:identifier", "status"}
# The per-type reference parameter that names the order (R4 spells ImagingStudy's without a dash).
BASED_ON = {"Task": "based-on", "ImagingStudy": "basedon", "DiagnosticReport": "based-on"}
FETCH_CONCURRENCY = 16
_COUNT = re.compile(r"[0-9]{1,9}")  # ASCII digits only ("²".isdigit() is True; int() refuses 4,300+ digits)


@dataclass(frozen=True)
class Token:
    system: str | None  # None: any system; "": explicitly no system
    value: str


Params = dict[str, list[list[str]]]  # name -> occurrences (AND) -> values (OR)


def parse_params(request: Request, allowed: set[str], default_count: int, max_count: int) -> tuple[Params, int]:
    params: Params = {}
    unsupported = []
    for name, raw in request.query_params.multi_items():
        bad = unsafe_character(name + raw)
        if bad is not None:
            raise FhirError(400, f"search parameter {name[:40]!r}: control or invisible format characters are not allowed: {bad}",
                            "value", name[:40])
        if name not in allowed | COMMON:
            unsupported.append(name)
            continue
        params.setdefault(name, []).append([v for v in raw.split(",") if v != ""] or [""])
    if unsupported:
        supported = ", ".join(sorted(allowed | {"_count"}))
        names = ", ".join(sorted(set(unsupported)))
        raise FhirError(400, f"unsupported search parameter(s): {names} (supported: {supported})", "not-supported")
    fmt = [v for occ in params.pop("_format", []) for v in occ]
    if any("json" not in f for f in fmt):
        raise FhirError(400, "only JSON is served (_format=json)", "not-supported", "_format")
    count = default_count
    for occ in params.pop("_count", []):
        if len(occ) != 1 or not _COUNT.fullmatch(occ[0]):
            raise FhirError(400, "_count must be a non-negative integer (at most 9 digits)", "value", "_count")
        count = min(int(occ[0]), max_count)
    return params, count


def token(raw: str) -> Token:
    if "|" in raw:
        system, value = raw.split("|", 1)
        return Token(system, value)
    return Token(None, raw)


def order_reference(raw: str, expected: str = "ServiceRequest") -> str | None:
    """The accession a reference parameter names (`ServiceRequest/A1`, `A1`, or a full URL)."""
    value = unquote(raw).rstrip("/")
    if "/" not in value:
        return accession_from_id(value) if value else None
    parts = value.split("/")
    if len(parts) >= 2 and parts[-2] == expected:
        return accession_from_id(parts[-1]) if parts[-1] else None
    if len(parts) >= 4 and parts[-4] == expected and parts[-2] == "_history":
        return accession_from_id(parts[-3]) if parts[-3] else None
    return None  # another resource type: matches nothing


class Searcher:
    def __init__(self, service: OrderService, cfg: FhirMappingConfig, max_candidates: int) -> None:
        self.service = service
        self.cfg = cfg
        self.max_candidates = max_candidates

    async def states(self, accessions: list[str], consistency: Consistency = Consistency.EVENTUAL) -> list[OrderState]:
        sem = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(acc: str) -> OrderState | None:
            async with sem:
                try:
                    return (await read_order(self.service, acc, consistency)).state
                except OrderNotFound:
                    return None

        found = await asyncio.gather(*(one(a) for a in dict.fromkeys(accessions)))
        return [s for s in found if s is not None]

    async def visible(self, *conditions: str) -> list[str]:
        q = d.quote_visibility
        parts = [d.order_workflow_types_clause(), f"TaskQueue = {q(self.service.task_queue)}", *conditions]
        out: list[str] = []
        async for wf in self.service.client.list_workflows(" AND ".join(parts), limit=self.max_candidates + 1):
            acc = d.accession_from_workflow_id(wf.id)
            if acc:
                out.append(acc)
        if len(out) > self.max_candidates:
            raise FhirError(
                400, f"the search matches more than {self.max_candidates} orders: add identifier or patient", "too-costly"
            )
        return out

    async def service_request_candidates(self, params: Params) -> list[str]:
        """Orders worth reading for a ServiceRequest search (a superset of the matches)."""
        q = d.quote_visibility
        if "identifier" in params:
            direct: list[str] = []
            placers: list[str] = []
            uids: list[str] = []
            for raw in params["identifier"][0]:
                t = token(raw)
                if t.system == self.cfg.accession_system or t.system is None:
                    direct.append(t.value)
                if t.system == DICOM_UID_SYSTEM:
                    uids.append(uid_from_value(t.value))
                elif t.system != self.cfg.accession_system:
                    placers.append(t.value)  # the placer's own system, or any system: placer numbers are indexed
            conditions = []
            if placers:
                conditions.append(f"{d.SA_PLACER.name} IN ({', '.join(q(v) for v in placers)})")
            if uids:
                conditions.append(f"{d.SA_STUDY_UID.name} IN ({', '.join(q(v) for v in uids)})")
            found = list(direct)
            for cond in conditions:
                found += await self.visible(cond)
            return found
        mrns = self.patient_values(params)
        if mrns:
            terms = [t for mrn in mrns for t in self.service.patient_terms(mrn)]
            return await self.visible(f"{d.SA_PATIENT_ID.name} IN ({', '.join(q(v) for v in terms)})")
        return await self.visible()

    def patient_values(self, params: Params) -> list[str]:
        for name in ("patient", "subject"):
            if name in params:
                return [v.split("/")[-1] for v in params[name][0]]
        for name in ("patient:identifier", "subject:identifier"):
            if name in params:
                return [token(v).value for v in params[name][0]]
        return []


def matches_service_request(resource: dict, state: OrderState, params: Params, cfg: FhirMappingConfig) -> bool:
    for occurrence in params.get("identifier", []):
        if not any(_has_identifier(resource, token(v)) for v in occurrence):
            return False
    patient = state.order.patient
    for name in ("patient", "subject"):
        for occurrence in params.get(name, []):
            if not any(_patient_id(v) == patient.mrn for v in occurrence):
                return False
    for name in ("patient:identifier", "subject:identifier"):
        for occurrence in params.get(name, []):
            if not any(_token_matches(token(v), cfg.mrn_system(patient.issuer), patient.mrn) for v in occurrence):
                return False
    for occurrence in params.get("status", []):
        if resource["status"] not in occurrence:
            return False
    return True


def _patient_id(raw: str) -> str:
    # The facade names a patient by MRN: patient=M1 or patient=Patient/M1.
    value = unquote(raw)
    return value.split("/", 1)[1] if value.startswith("Patient/") else value


def _has_identifier(resource: dict, t: Token) -> bool:
    return any(_token_matches(t, i.get("system", ""), i.get("value", "")) for i in resource.get("identifier", []))


def _token_matches(t: Token, system: str, value: str) -> bool:
    if t.value != value:
        return False
    return t.system is None or t.system == system
