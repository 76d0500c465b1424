"""Counting the order service's calls (starts, events, operator actions) by outcome.

The counters live in radflow/infra/metrics.py with every other metric; the outcome of a failure
is read from the order service's own error types, so this module sits beside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from radflow.infra.metrics import OPERATOR_ACTIONS, ORDER_EVENTS, ORDER_TRANSITIONS, ORDERS_STARTED
from radflow.service.order_errors import EventRejected, OrderNotFound, TemporalUnavailable


def _failure_outcome(err: BaseException) -> str:
    if isinstance(err, OrderNotFound):
        return "not_found"
    if isinstance(err, EventRejected):
        return "rejected"
    if isinstance(err, TemporalUnavailable):
        return "unavailable"
    return "failed"


@contextmanager
def counting_start(source: str) -> Iterator[list[str]]:
    """Count one order start: the body appends "created"/"existing"; an exception counts as its kind."""
    outcome: list[str] = []
    try:
        yield outcome
    except Exception as err:
        ORDERS_STARTED.labels(source, "refused" if _failure_outcome(err) == "rejected" else _failure_outcome(err)).inc()
        raise
    ORDERS_STARTED.labels(source, outcome[0] if outcome else "unknown").inc()


@contextmanager
def counting_event(source: str, kind: str) -> Iterator[list]:
    """Count one event sent to an order; the body appends the EventResult. An applied event that
    changed the order is a transition (counted by the order's resulting status)."""
    results: list = []
    try:
        yield results
    except Exception as err:
        ORDER_EVENTS.labels(source, kind, _failure_outcome(err)).inc()
        raise
    if not results:
        return
    result = results[0]
    if result.duplicate:
        ORDER_EVENTS.labels(source, kind, "duplicate").inc()
    elif not result.changed:
        ORDER_EVENTS.labels(source, kind, "unchanged").inc()
    else:
        ORDER_EVENTS.labels(source, kind, "applied").inc()
        ORDER_TRANSITIONS.labels(kind, str(result.status.value)).inc()


_OPERATOR_ACTIONS = frozenset({"retry", "skip", "cancel"})


@contextmanager
def counting_operator_action(action: str) -> Iterator[None]:
    label = action if action in _OPERATOR_ACTIONS else "other"  # a typo must not mint a series
    try:
        yield
    except Exception as err:
        OPERATOR_ACTIONS.labels(label, _failure_outcome(err)).inc()
        raise
    OPERATOR_ACTIONS.labels(label, "applied").inc()
