"""The order service's typed failures, which every edge maps (HL7 ACK codes, DICOM statuses, HTTP)."""

from __future__ import annotations

from radflow.domain import definitions as d


class OrderError(Exception):
    """Base of the typed failures every edge maps."""


class OrderNotFound(OrderError):
    pass


class EventRejected(OrderError):
    """The order exists but refused the event (invalid transition / invalid input)."""

    def __init__(self, message: str, error_type: str = d.ErrorType.INVALID_TRANSITION) -> None:
        super().__init__(message)
        self.error_type = error_type


class OrderClosed(EventRejected):
    """The accession belongs to a closed order: events and new orders for it are refused (AE / 409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, d.ErrorType.ORDER_CLOSED)


class TemporalUnavailable(OrderError):
    """Temporal did not confirm in time: the caller must not acknowledge success."""


class IndexUnavailable(TemporalUnavailable):
    """The order index (read-model database) did not confirm a write or answer a lookup: retryable,
    and mapped like Temporal's unavailability by every edge (AE / DICOM failure / 503)."""
