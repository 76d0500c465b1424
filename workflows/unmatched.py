"""One unmatched item (unsolicited study, unscheduled MPPS) = one small workflow until resolved.

The gateway reports the item with update-with-start (create or refresh); an operator links it
to an order (or dismisses it) with the resolve update, which completes the workflow with the
item as its result, so a late report of the same item still finds the link.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from radflow.domain import definitions as d
    from radflow.domain.unmatched import ResolveUnmatched, UnmatchedItem, UnmatchedNote, UnmatchedStart

# A busy item (an MPPS re-sent for weeks) must not grow its history without bound.
HISTORY_SOFT_LIMIT = 2_000


@workflow.defn(name=d.UNMATCHED_WORKFLOW)
class UnmatchedItemWorkflow:
    @workflow.init
    def __init__(self, start: UnmatchedStart) -> None:
        now = workflow.now()
        self.item = start.carried or UnmatchedItem(kind=start.kind, key=start.key, first_seen=now, last_seen=now)

    @workflow.run
    async def run(self, start: UnmatchedStart) -> UnmatchedItem:
        await workflow.wait_condition(lambda: self.item.resolved or self._history_long())
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self.item.resolved:
            workflow.continue_as_new(UnmatchedStart(kind=start.kind, key=start.key, carried=self.item))
        return self.item

    @workflow.update(name=d.UNMATCHED_NOTE_UPDATE, description="Internal: the DICOM gateway records or refreshes the item.")
    def note(self, note: UnmatchedNote) -> UnmatchedItem:
        # After resolution the note changes nothing: the caller reads linked_accession instead.
        if not self.item.resolved:
            self.item.details = {**self.item.details, **note.details}
            self.item.reason = note.reason or self.item.reason
            self.item.last_seen = workflow.now()
            self.item.notes += 1
        return self.item

    @workflow.update(name=d.UNMATCHED_RESOLVE_UPDATE, description=(
        "Link to an order or dismiss; use the API (`POST /orders/{acc}/link-study`, `POST /exceptions/{kind}/{key}/dismiss`)."))
    def resolve(self, req: ResolveUnmatched) -> UnmatchedItem:
        if not self.item.resolved:
            self.item.resolved_at = workflow.now()
            self.item.linked_accession = req.accession
            self.item.resolution_note = req.note
        return self.item

    @resolve.validator
    def _validate_resolve(self, req: ResolveUnmatched) -> None:
        if self.item.resolved and req.accession != self.item.linked_accession:
            raise ValueError(f"already resolved (linked to {self.item.linked_accession or 'nothing'})")

    @workflow.query(name=d.UNMATCHED_DETAILS_QUERY, description="The item: what arrived, why it matched no order, resolution.")
    def details(self) -> UnmatchedItem:
        return self.item

    def _history_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_SOFT_LIMIT
