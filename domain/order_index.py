"""Keys and payloads of the order index: the strongly consistent way to find orders.

Temporal visibility (search attributes) is eventually consistent: an order acknowledged
a moment ago can be missing from a `PatientID = ...` query (seen on the SQLite dev server
for orders minutes old). Patient fan-out (A08/A31), merges (A40) and placer lookups must
not miss an order, so OrderService also writes each order's keys into the order index
(the read-model database, radflow/infra/order_index_store.py) before the order is
acknowledged, and reads them back from there. Older versions kept the index in OrderIndex
bucket workflows (workflows/order_index.py); those are still read for their orders
(radflow/service/legacy_index.py), and the bucket payloads below are theirs.

Patients are keyed by MRN alone, as the order workflow matches patient events by MRN
(issuers are sent inconsistently by real feeds); placer orders by "<number>^<application>".
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field

from radflow.domain import definitions as d

MAX_KEY_CHARS = 512  # keys come from HL7/FHIR fields; longer ones are refused by the index


def patient_index_key(mrn: str) -> str:
    return f"mrn:{mrn}"


def placer_index_key(placer_key: str) -> str:
    return f"placer:{placer_key}"


def study_index_key(study_uid: str) -> str:
    """The Study Instance UID an order announced (ZDS-1 / IPC-3 / FHIR): images without an accession."""
    return f"study:{study_uid}"


def index_bucket(key: str, buckets: int = d.INDEX_BUCKETS) -> int:
    """Stable across processes and Python versions (unlike hash())."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def by_bucket(entries: dict[str, list[str]]) -> dict[int, dict[str, list[str]]]:
    out: dict[int, dict[str, list[str]]] = {}
    for key, accessions in entries.items():
        out.setdefault(index_bucket(key), {})[key] = accessions
    return out


class IndexEntries(BaseModel):
    """Input of the add and forget updates: key -> accessions."""

    entries: dict[str, list[str]] = Field(default_factory=dict)


def invalid_key(key: str) -> str | None:
    if not key or len(key) > MAX_KEY_CHARS:
        return f"index key must have 1..{MAX_KEY_CHARS} characters"
    return None


def valid_entries(request: IndexEntries) -> dict[str, list[str]]:
    """What a signal may apply (signals cannot be refused; OrderService checks before sending)."""
    return {k: [a for a in v if a] for k, v in request.entries.items() if invalid_key(k) is None}


class IndexLookup(BaseModel):
    keys: list[str]


class IndexState(BaseModel):
    """One bucket's keys; carried across continue-as-new."""

    entries: dict[str, list[str]] = Field(default_factory=dict)
    history_limit: int = 4_000  # events before prune + continue-as-new (small in tests)

    def add(self, key: str, accessions: list[str]) -> None:
        held = self.entries.setdefault(key, [])
        held.extend(a for a in accessions if a not in held)

    def forget(self, key: str, accessions: list[str]) -> None:
        held = [a for a in self.entries.get(key, []) if a not in accessions]
        if held:
            self.entries[key] = held
        else:
            self.entries.pop(key, None)

    def drop_everywhere(self, accessions: set[str]) -> int:
        before = sum(len(v) for v in self.entries.values())
        for key in list(self.entries):
            self.forget(key, list(accessions & set(self.entries[key])))
        return before - sum(len(v) for v in self.entries.values())

    def accessions(self) -> list[str]:
        return sorted({a for held in self.entries.values() for a in held})


class PruneRequest(BaseModel):
    accessions: list[str]


class PruneResult(BaseModel):
    closed: list[str] = Field(default_factory=list)  # order workflows no longer running (or gone)
