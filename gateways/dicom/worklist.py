"""Modality Worklist C-FIND SCP (IHE RAD-5) over the worklist read model (SQLite or PostgreSQL).

Runs in the association's thread and never calls Temporal: the read model is local,
so a query costs one indexed SELECT plus matching of the candidates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from radflow.domain.dicom.matching import MalformedQuery, QueryTooComplex, compile_query
from radflow.gateways.dicom.read_models import WorklistReadModel
from radflow.gateways.dicom.worklist_store import QueryBudgetExceeded

log = logging.getLogger("radflow.dicom.mwl")

PENDING = 0xFF00
PENDING_UNSUPPORTED_KEYS = 0xFF01  # matches continue; some optional keys not supported
CANCELLED = 0xFE00
OUT_OF_RESOURCES = 0xA700  # the query ran past its time budget
IDENTIFIER_MISMATCH = 0xA900  # identifier does not match SOP class
UNABLE_TO_PROCESS = 0xC001
QUERY_TOO_COMPLEX = 0xC002  # "unable to process" range: a valid identifier beyond radflow's limits


def _loggable(err: Exception) -> str:
    """The reason without the offending value: a query value may be a name, an ID or a birth date.

    The peer still gets the whole reason in ErrorComment (it is its own query)."""
    text = str(err)
    keyword, sep, _ = text.partition(":")
    return f"{keyword}: malformed or over a limit" if sep else text


def failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    # The command set is always the default repertoire, and a reason may quote the peer's non-ASCII value.
    ds.ErrorComment = comment.encode("ascii", "replace").decode("ascii")[:64]
    return ds


class WorklistService:
    def __init__(self, store: WorklistReadModel, *, show_started: bool = False, max_results: int = 0,
                 budget_s: float = 0.0) -> None:
        self.store = store
        self.statuses = ("SCHEDULED", "STARTED") if show_started else ("SCHEDULED",)
        self.max_results = max_results
        self.budget_s = budget_s  # 0 = unbounded

    def on_find(self, event: Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        started = time.perf_counter()
        deadline = time.monotonic() + self.budget_s if self.budget_s > 0 else None
        calling = event.assoc.requestor.ae_title
        try:
            query = compile_query(event.identifier)
        except QueryTooComplex as err:
            log.warning("MWL query refused: %s", _loggable(err), extra={"calling_ae": calling})
            yield failure(QUERY_TOO_COMPLEX, f"query too complex: {err}"), None
            return
        except MalformedQuery as err:
            log.warning("MWL query refused: %s", _loggable(err), extra={"calling_ae": calling})
            yield failure(IDENTIFIER_MISMATCH, str(err)), None
            return
        except Exception as err:  # undecodable identifier: answer, never crash the association
            log.warning("MWL identifier unreadable: %s", type(err).__name__, extra={"calling_ae": calling})
            yield failure(IDENTIFIER_MISMATCH, "identifier cannot be decoded"), None
            return
        pending = PENDING_UNSUPPORTED_KEYS if query.unsupported else PENDING
        sent = 0
        try:
            for item in self.store.find(query, self.statuses, self.max_results, deadline):
                if event.is_cancelled:
                    log.info("MWL query cancelled", extra={"calling_ae": calling, "sent": sent})
                    yield CANCELLED, None
                    return
                yield pending, query.project(item)
                sent += 1
        except QueryBudgetExceeded:
            log.warning("MWL query ended: time budget exceeded",
                        extra={"calling_ae": calling, "sent": sent, "budget_s": self.budget_s})
            yield failure(OUT_OF_RESOURCES, f"query time budget ({self.budget_s:g} s) exceeded: narrow the query"), None
            return
        except Exception:
            log.exception("MWL query failed", extra={"calling_ae": calling})
            yield failure(UNABLE_TO_PROCESS, "worklist unavailable"), None
            return
        log.info("MWL query answered", extra={"calling_ae": calling, "matches": sent,
                                              "ms": round((time.perf_counter() - started) * 1000, 1)})
