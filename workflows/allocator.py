"""Accession numbers for orders that arrive without one, as a RIS would assign them.

One long-lived workflow holds the sequence, so numbers are unique across every gateway
process and survive restarts (the counter lives in Temporal's history, not in a file).
An allocation is keyed by the placer order, so a resent order gets the same number.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from radflow.domain import definitions as d
    from radflow.domain.order import AllocateRequest, AllocatorState

RECENT_KEPT = 20_000  # placer -> accession pairs carried across continue-as-new
HISTORY_SOFT_LIMIT = 5_000
SEQUENCE_DIGITS = 8


def format_accession(prefix: str, seq: int) -> str:
    # DICOM AccessionNumber is SH: at most 16 characters.
    return f"{prefix}{seq:0{SEQUENCE_DIGITS}d}"[:16]


@workflow.defn(name=d.ALLOCATOR_WORKFLOW)
class AccessionAllocatorWorkflow:
    @workflow.init
    def __init__(self, state: AllocatorState) -> None:
        self.state = state

    @workflow.run
    async def run(self, state: AllocatorState) -> None:
        await workflow.wait_condition(
            lambda: workflow.info().is_continue_as_new_suggested()
            or workflow.info().get_current_history_length() > HISTORY_SOFT_LIMIT
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        recent = dict(list(self.state.recent.items())[-RECENT_KEPT:])
        workflow.continue_as_new(AllocatorState(next_seq=self.state.next_seq, recent=recent))

    @workflow.update(name=d.ALLOCATE_UPDATE, description="Internal: the next accession number for a placer order key.")
    def allocate(self, request: AllocateRequest) -> str:
        existing = self.state.recent.get(request.placer_key)
        if existing:
            return existing
        accession = format_accession(request.prefix, self.state.next_seq)
        self.state.next_seq += 1
        self.state.recent[request.placer_key] = accession
        return accession

    @allocate.validator
    def _validate(self, request: AllocateRequest) -> None:
        if not request.placer_key.strip("^"):
            raise ValueError("an order without accession needs a placer order number")
        if len(request.prefix) > 8:
            raise ValueError("accession prefix longer than 8 characters")

    @workflow.query(name=d.LOOKUP_QUERY, description="The accession allocated to a placer order key, if recent.")
    def lookup(self, placer_key: str) -> str | None:
        return self.state.recent.get(placer_key)
