"""radflow's own Prometheus metrics (what the gateways, the API and the worker count).

All live in prometheus_client's default registry, next to the process/Python collectors and the
Temporal SDK's runtime metrics (radflow/infra/telemetry.py); every process serves them on /metrics
(radflow/infra/health.py). Labels carry only bounded, PHI-free values: message types and ACK codes,
DICOM operation names and status classes, event kinds and order statuses; never an accession,
an MRN, a control id or an AE title a peer chose.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

# ------------------------------------------------------------------ HL7 / MLLP
HL7_MESSAGES = Counter(
    "radflow_hl7_messages", "Inbound HL7 v2 messages by message type and the ACK code answered",
    ["message_type", "ack_code"],
)
HL7_ACK_SECONDS = Histogram(
    "radflow_hl7_ack_seconds", "From an HL7 message's receipt to its ACK (Temporal round trips included)",
    ["ack_code"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

MLLP_CONNECTIONS = Gauge("radflow_mllp_connections", "MLLP connections open on this process's listeners")
MLLP_CONNECTIONS_REFUSED = Counter(
    "radflow_mllp_connections_refused", "MLLP connections closed on accept: over mllp_max_connections",
)
MLLP_REFUSED_FRAMES = Counter(
    "radflow_mllp_refused_frames", "MLLP frames answered AR before parsing, by reason "
    "(missing_start, interrupted, oversized, incomplete)",
    ["reason"],
)


_FRAME_REASONS = ("missing_start", "interrupted", "oversized", "incomplete", "other")
for _reason in _FRAME_REASONS:  # every series exists from the start (0), so rates and alerts see it
    MLLP_REFUSED_FRAMES.labels(_reason)


def observe_refused_frame(reason: str) -> None:
    """The FrameReader's / listener's reason text, reduced to a fixed label."""
    for key, label in (("missing start", "missing_start"), ("interrupted", "interrupted"),
                       ("larger than", "oversized"), ("not completed", "incomplete")):
        if key in reason:
            MLLP_REFUSED_FRAMES.labels(label).inc()
            return
    MLLP_REFUSED_FRAMES.labels("other").inc()


# ------------------------------------------------------------------ DICOM
DICOM_OPERATIONS = Counter(
    "radflow_dicom_operations", "DICOM operations answered by the gateway, by operation and status class",
    ["operation", "status"],
)

# ------------------------------------------------------------------ orders (gateways, API, via OrderService)
ORDERS_STARTED = Counter(
    "radflow_orders_started", "Order starts asked of Temporal, by source and outcome (created, existing, refused, failed)",
    ["source", "outcome"],
)
ORDER_EVENTS = Counter(
    "radflow_order_events", "Events sent to orders, by source, kind and outcome "
    "(applied, unchanged, duplicate, rejected, not_found, unavailable)",
    ["source", "kind", "outcome"],
)
ORDER_TRANSITIONS = Counter(
    "radflow_order_transitions", "Applied order events that changed an order, by event kind and resulting status",
    ["kind", "status"],
)

OPERATOR_ACTIONS = Counter(
    "radflow_operator_actions", "Operator decisions (retry, skip...) sent through the API or CLI, by outcome "
    "(applied, rejected, not_found, unavailable)",
    ["action", "outcome"],
)

# ------------------------------------------------------------------ worker
LANE_FAILURES = Counter(
    "radflow_lane_failures", "Failed attempts of lane activities (delivery, sync, archive), by activity; "
    "final=true when no retry follows (the lane then waits for an operator)",
    ["activity", "error_type", "final"],
)
ORDERS_NEEDING_ATTENTION = Gauge(
    "radflow_orders_needing_attention", "Running orders flagged NeedsAttention (Temporal visibility, refreshed periodically)",
)
ORDERS_OPEN = Gauge(
    "radflow_orders_open", "Running order workflows (Temporal visibility, refreshed periodically)",
)
VISIBILITY_REFRESH_FAILURES = Counter(
    "radflow_visibility_refresh_failures", "Refreshes of the order gauges that Temporal did not answer",
)

# ------------------------------------------------------------------ label hygiene
_CODE = re.compile(r"[A-Z][A-Z0-9]{2}")
_TRIGGER = re.compile(r"[A-Z][A-Z0-9]{2}")
_KNOWN_CODES = frozenset({"ADT", "ORM", "OMI", "OMG", "ORU", "ORL", "SIU", "MDM", "ACK", "QRY", "DFT", "BAR", "OML", "RDE"})


def hl7_type_label(code: str, trigger: str) -> str:
    """`ORM^O01` for a well-formed, known message code; "other" otherwise (a sender must not mint series)."""
    code, trigger = code.strip().upper(), trigger.strip().upper()
    if code not in _KNOWN_CODES or not _CODE.fullmatch(code):
        return "other" if code else "unreadable"
    return f"{code}^{trigger}" if _TRIGGER.fullmatch(trigger) else code


def hl7_type_of(text: str) -> str:
    """The type label from raw message text (MSH-9), best effort, never raises."""
    start = text.find("MSH")
    if start < 0 or len(text) < start + 8:
        return "unreadable"
    line = text[start:start + 512].split("\r", 1)[0].split("\n", 1)[0]
    if len(line) < 5:  # no field separator and encoding characters (e.g. a bare "MSH")
        return "unreadable"
    field, component = line[3], line[4]
    parts = line.split(field)
    if len(parts) < 9:
        return "unreadable"
    msh9 = parts[8].split(component)
    return hl7_type_label(msh9[0], msh9[1] if len(msh9) > 1 else "")


def observe_hl7(message_type: str, ack_code: str, started: float) -> None:
    HL7_MESSAGES.labels(message_type, ack_code or "none").inc()
    HL7_ACK_SECONDS.labels(ack_code or "none").observe(time.perf_counter() - started)


_DIMSE_OPERATIONS = {
    0x8001: "C-STORE", 0x8020: "C-FIND", 0x8010: "C-GET", 0x8021: "C-MOVE", 0x8030: "C-ECHO",
    0x8100: "N-EVENT-REPORT", 0x8110: "N-GET", 0x8120: "N-SET", 0x8130: "N-ACTION", 0x8140: "N-CREATE",
    0x8150: "N-DELETE",
}


def dicom_status_class(status: int) -> str:
    """PS3.7 Annex C classes: success, warning, failure, cancel (pending is not an outcome)."""
    if status == 0x0000:
        return "success"
    if status == 0xFE00:
        return "cancel"
    if status in (0xFF00, 0xFF01):
        return "pending"
    if status == 0x0001 or 0xB000 <= status <= 0xBFFF or status == 0x0107 or status == 0x0116:
        return "warning"
    return "failure"


def observe_dimse_response(command_field: int, status: int) -> None:
    """One final DIMSE response sent by the gateway (pending C-FIND answers are not counted)."""
    outcome = dicom_status_class(status)
    if outcome == "pending":
        return
    DICOM_OPERATIONS.labels(_DIMSE_OPERATIONS.get(command_field, "other"), outcome).inc()
