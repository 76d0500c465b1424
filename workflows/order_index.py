"""One bucket of the order index: patient and placer keys -> accessions of their orders.

Writes are signals (OrderService sends them with signal-with-start before it acknowledges
an order), reads are queries, which Temporal answers only after every signal received
before them was applied: what visibility does not guarantee. The bucket stays small: before each continue-as-new an
activity asks Temporal which indexed orders have closed, and those leave the index
(lookups also drop closed orders as they meet them).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from radflow.domain import definitions as d
    from radflow.domain.order_index import IndexEntries, IndexLookup, IndexState, PruneRequest, PruneResult, valid_entries

@workflow.defn(name=d.ORDER_INDEX_WORKFLOW)
class OrderIndexWorkflow:
    @workflow.init
    def __init__(self, state: IndexState) -> None:
        self.state = state

    @workflow.run
    async def run(self, state: IndexState) -> None:
        await workflow.wait_condition(
            lambda: workflow.info().is_continue_as_new_suggested()
            or workflow.info().get_current_history_length() > self.state.history_limit
        )
        await self._prune()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self.state)

    async def _prune(self) -> None:
        accessions = self.state.accessions()
        if not accessions:
            return
        try:
            result = await workflow.execute_activity(
                d.PRUNE_INDEX_ACTIVITY,
                PruneRequest(accessions=accessions),
                result_type=PruneResult,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
                summary=f"prune {len(accessions)} indexed orders",
            )
        except ActivityError:
            # Pruning only bounds the size; lookups filter closed orders anyway. Try next run.
            workflow.logger.warning("order index prune failed; kept all entries")
            return
        dropped = self.state.drop_everywhere(set(result.closed))
        workflow.logger.info("order index pruned %d closed order(s)", dropped)

    # Signals, not updates: signal-with-start is durable without a worker, so an order can
    # still be acknowledged while workers restart; a later query still sees the signal
    # (Temporal answers a query only after the pending workflow task ran).
    @workflow.signal(name=d.INDEX_ADD_SIGNAL, description="add accessions under patient/placer keys")
    def add(self, request: IndexEntries) -> None:
        for key, accessions in valid_entries(request).items():
            self.state.add(key, accessions)

    @workflow.signal(name=d.INDEX_FORGET_SIGNAL, description="remove accessions from keys")
    def forget(self, request: IndexEntries) -> None:
        for key, accessions in valid_entries(request).items():
            self.state.forget(key, accessions)

    @workflow.query(name=d.INDEX_LOOKUP_QUERY, description="accessions held under each key")
    def lookup(self, request: IndexLookup) -> dict[str, list[str]]:
        return {key: list(self.state.entries.get(key, [])) for key in request.keys}

