"""Shared definitions: the one place gateways, API, CLI and workflows agree on names.

Changing a value here changes the wire contract with in-flight workflows: treat every
string below as persisted data.
"""

from __future__ import annotations

from enum import StrEnum

from temporalio.common import SearchAttributeKey

TASK_QUEUE = "radflow-orders"

# Order workflow types. "ImagingOrder" (workflows/order_v1.py) is the single-step-queue
# workflow, kept registered, unchanged, for orders started before the lanes rewrite; new
# orders start "ImagingOrderV2" (workflows/order.py). See docs/workflow.md "Upgrades".
ORDER_WORKFLOW = "ImagingOrderV2"
ORDER_WORKFLOW_V1 = "ImagingOrder"
ORDER_WORKFLOW_TYPES = (ORDER_WORKFLOW_V1, ORDER_WORKFLOW)
# What OrderService writes into every new order's StartOrder.baseline: the order workflow takes the
# patched paths of that baseline without recording markers (workflows/order.py BASELINE_PATCHES).
ORDER_BASELINE = 1
ALLOCATOR_WORKFLOW = "AccessionAllocator"
ALLOCATOR_ID_PREFIX = "radflow-accession-allocator"


def gateway_task_queue(task_queue: str, gateway_id: str) -> str:
    """The task queue a DICOM gateway's own worker serves: work that needs its local spool runs there."""
    return f"{task_queue}-dicom-{gateway_id}"


def allocator_workflow_id(task_queue: str) -> str:
    """One accession sequence per task queue: the allocator runs where its orders run."""
    return ALLOCATOR_ID_PREFIX if task_queue == TASK_QUEUE else f"{ALLOCATOR_ID_PREFIX}-{task_queue}"

# Handler names (also what an operator types in the Temporal UI).
EVENT_UPDATE = "event"  # every inbound event (HL7, DICOM, FHIR, API) for an existing order
OPERATOR_UPDATE = "operator"  # {"action": "retry"|"skip", "note": "..."}: validated
OPERATOR_SIGNAL = "operator-signal"  # same payload, for the Temporal UI "Send Signal" dialog
OPERATOR_ACTIONS = ("retry", "skip")
OPERATOR_NOTE_REQUIRED = frozenset({"skip"})  # giving up a delivery needs a reason on record
OPERATOR_EXAMPLE = '{"action": "retry", "lane": "hl7"}'
UI_ORIGIN = "temporal-ui"  # an operator action with no actor and no radflow origin came from the Temporal UI/CLI
STATE_QUERY = "state"
TIMELINE_QUERY = "timeline"
ALLOCATE_UPDATE = "allocate"
LOOKUP_QUERY = "lookup"
# The order's read model (domain/order_view.py): the memo key GET /orders/{accession} reads without a worker.
MEMO_ORDER_VIEW = "order"

ORDER_ID_PREFIX = "order-"


def order_workflow_id(accession: str) -> str:
    """The workflow id is the business key: one workflow per accession number."""
    return f"{ORDER_ID_PREFIX}{accession}"


def accession_from_workflow_id(workflow_id: str) -> str | None:
    if workflow_id.startswith(ORDER_ID_PREFIX):
        return workflow_id[len(ORDER_ID_PREFIX) :]
    return None


def event_update_id(source: str, control_id: str) -> str:
    """Update ids make resent messages idempotent: Temporal returns the first outcome again."""
    return f"{source}:{control_id}"


class OrderStatus(StrEnum):
    ORDERED = "ORDERED"
    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN_PROGRESS"
    ACQUIRED = "ACQUIRED"
    REPORTED = "REPORTED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    DISCONTINUED = "DISCONTINUED"
    # Closure outcomes (docs/workflow.md "Closure"):
    COMPLETED = "COMPLETED"  # final report, but no destination acknowledged it (none configured / all skipped)
    EXPIRED = "EXPIRED"  # scheduled, never started within the policy's window
    UNREPORTED = "UNREPORTED"  # acquired, no final report within the policy's maximum age
    # Only ImagingOrder v1 (workflows/order_v1.py) sets this overlay; v2 keeps the clinical
    # status and flags attention per lane (OrderState.lanes, NeedsAttention).
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


# Orders in these states take no further clinical events (corrections to a delivered
# report excepted); the workflow closes after the retention period.
CLOSED_STATUSES = frozenset({OrderStatus.CANCELLED, OrderStatus.DISCONTINUED, OrderStatus.EXPIRED,
                             OrderStatus.UNREPORTED})
# Statuses whose order may still take a corrected report until the retention period ends.
REPORT_DONE_STATUSES = frozenset({OrderStatus.DELIVERED, OrderStatus.COMPLETED})


class ReportStatus(StrEnum):
    PRELIMINARY = "preliminary"
    FINAL = "final"
    CORRECTED = "corrected"


class EventSource(StrEnum):
    HL7 = "HL7"
    DICOM = "DICOM"
    FHIR = "FHIR"
    API = "API"
    TIMER = "TIMER"
    OPERATOR = "OPERATOR"
    SYSTEM = "SYSTEM"
    TEMPORAL = "TEMPORAL"  # a Temporal-level request (UI "Request Cancellation", `temporal workflow cancel`)


class OverdueFlag(StrEnum):
    NO_IMAGES = "NO_IMAGES"
    NO_FINAL_REPORT = "NO_FINAL_REPORT"


# Error types carried by ApplicationError so every edge maps them the same way
# (HL7 AE/AR, DICOM status, HTTP 4xx).
class ErrorType(StrEnum):
    INVALID_TRANSITION = "InvalidTransition"
    INVALID_EVENT = "InvalidEvent"
    NOT_CONFIGURED = "NotConfigured"
    DELIVERY_REJECTED = "DeliveryRejected"
    DELIVERY_FAILED = "DeliveryFailed"  # consumer unreachable / AE: retried by the activity policy
    NO_ATTENTION_PENDING = "NoAttentionPending"
    OPERATOR_REFUSED = "OperatorRefused"  # unknown action / lane, missing note, malformed argument
    ORDER_CLOSED = "OrderClosed"  # the accession belongs to a closed order (a new order cannot reuse it)
    ARCHIVE_COUNT_MISMATCH = "ArchiveCountMismatch"
    # DICOM storage / archive forwarding (activities/archive.py); all retryable
    ARCHIVE_UNREACHABLE = "ArchiveUnreachable"
    ARCHIVE_FORWARD_INCOMPLETE = "ArchiveForwardIncomplete"
    SPOOL_MISSING = "SpoolMissing"


# Refusals a human reads in the Temporal UI: their failures carry the one-line reason, never a
# stack trace (radflow.service.temporal's failure converter drops it).
REFUSAL_ERROR_TYPES = frozenset({ErrorType.OPERATOR_REFUSED, ErrorType.NO_ATTENTION_PENDING,
                                 ErrorType.INVALID_TRANSITION, ErrorType.INVALID_EVENT, ErrorType.ORDER_CLOSED})
# Refusals of an operator action: their text is the operator's input and lane names, never patient data,
# so they stay readable (unencoded) when payload encryption is on.
OPERATOR_REFUSAL_TYPES = frozenset({ErrorType.OPERATOR_REFUSED, ErrorType.NO_ATTENTION_PENDING})


# Search attributes radflow registers (`radflow dev` and `radflow setup`).
SA_ACCESSION = SearchAttributeKey.for_keyword("AccessionNumber")
SA_PATIENT_ID = SearchAttributeKey.for_keyword("PatientID")
SA_ORDER_STATUS = SearchAttributeKey.for_keyword("OrderStatus")
SA_MODALITY = SearchAttributeKey.for_keyword("Modality")
SA_STATION = SearchAttributeKey.for_keyword("ScheduledStationAETitle")
SA_STUDY_UID = SearchAttributeKey.for_keyword("StudyInstanceUID")
SA_SCHEDULED_START = SearchAttributeKey.for_datetime("ScheduledStart")
SA_NEEDS_ATTENTION = SearchAttributeKey.for_bool("NeedsAttention")
SA_OVERDUE = SearchAttributeKey.for_keyword_list("OverdueFlags")
SA_PLACER = SearchAttributeKey.for_keyword("PlacerOrderNumber")
SA_ATTENTION_LANE = SearchAttributeKey.for_keyword_list("AttentionLane")  # lanes waiting for an operator
SA_PROCEDURE_CODE = SearchAttributeKey.for_keyword("ProcedureCode")

SEARCH_ATTRIBUTES = (
    SA_ACCESSION,
    SA_PATIENT_ID,
    SA_ORDER_STATUS,
    SA_MODALITY,
    SA_STATION,
    SA_STUDY_UID,
    SA_SCHEDULED_START,
    SA_NEEDS_ATTENTION,
    SA_OVERDUE,
    SA_PLACER,
    SA_ATTENTION_LANE,
    SA_PROCEDURE_CODE,
)


def quote_visibility(value: str) -> str:
    """Quote a value for a Temporal visibility query (single quotes, escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def order_workflow_types_clause() -> str:
    """Visibility filter matching order workflows of every type still registered."""
    return "WorkflowType IN (" + ", ".join(quote_visibility(t) for t in ORDER_WORKFLOW_TYPES) + ")"


# Activities the order workflow drives, by consumer name. A consumer whose endpoint is
# not configured answers "not_configured" and the step is recorded as skipped.
# Which consumers an order uses is fixed per order by `OrderPolicy` (from settings).
REPORT_DELIVERY_ACTIVITIES = {
    "hl7": "deliver_report_hl7",  # ORU^R01 over MLLP to the EHR / result consumer
    "fhir": "deliver_report_fhir",  # DiagnosticReport to the FHIR server
}
# Called after every applied change (order/status/study/report) to mirror the order.
SYNC_ACTIVITIES = {
    "worklist": "sync_worklist",  # the Modality Worklist read model
    "fhir": "sync_fhir",  # Patient/Encounter/ServiceRequest/Task/ImagingStudy on the FHIR server
}
# Run once the study is complete on radflow's side; ACQUIRED only after all succeeded
# (forward to the archive, then confirm the archive's instance count).
ACQUISITION_ACTIVITIES = {
    "archive": "archive_study",
}
MILESTONE_REPORT = "report"
MILESTONE_ACQUISITION = "acquisition"
MILESTONE_SYNC = "sync"
# Sync activities that touch only local files of the worker: run as local activities (one
# history marker instead of three events, no extra workflow task).
LOCAL_ACTIVITIES = frozenset({"sync_worklist"})
# Lanes whose report delivery writes everything their sync writes from the same snapshot,
# unless an owner milestone is pending (then Patient/Encounter must be rewritten by a sync).
REPORT_COVERS_SYNC = frozenset({"fhir"})
OWNER_MILESTONES = frozenset({"NEW_ORDER", "ORDER_CHANGED", "SCHEDULE", "PATIENT_UPDATED", "PATIENT_MERGED"})


def lane_names(sync: list[str], report: list[str], acquisition: list[str]) -> list[str]:
    """One delivery lane per consumer that has an activity, in a stable order."""
    names: list[str] = []
    for consumers, registry in ((sync, SYNC_ACTIVITIES), (report, REPORT_DELIVERY_ACTIVITIES),
                                (acquisition, ACQUISITION_ACTIVITIES)):
        names += [c for c in consumers if c in registry and c not in names]
    return names


# --- Order index (workflows/order_index.py, domain/order_index.py) ---
# Strongly consistent "which orders has this patient / placer order" lookups, written
# by OrderService before an order is acknowledged. Keys are spread over a fixed number
# of small workflows; changing INDEX_BUCKETS moves keys to other workflows (persisted data).
ORDER_INDEX_WORKFLOW = "OrderIndex"
INDEX_ID_PREFIX = "radflow-order-index"
INDEX_BUCKETS = 32
INDEX_ADD_SIGNAL = "index-add"  # {"entries": {key: [accession, ...]}}
INDEX_FORGET_SIGNAL = "index-forget"
INDEX_LOOKUP_QUERY = "index-lookup"
PRUNE_INDEX_ACTIVITY = "prune_order_index"  # which indexed orders have closed (run before continue-as-new)


def index_workflow_id(task_queue: str, bucket: int) -> str:
    base = INDEX_ID_PREFIX if task_queue == TASK_QUEUE else f"{INDEX_ID_PREFIX}-{task_queue}"
    return f"{base}-{bucket}"
# --- end order index ---


# --- Unmatched items (workflows/unmatched.py, radflow/service/unmatched.py) ---
# Unsolicited studies and unscheduled MPPS are kept as one small workflow each until an
# operator links them to an order; the id makes a second report of the same item a no-op.
UNMATCHED_WORKFLOW = "UnmatchedItem"
UNMATCHED_NOTE_UPDATE = "note"  # create-or-refresh the item's details (update-with-start)
UNMATCHED_RESOLVE_UPDATE = "resolve"  # link to an accession (or dismiss with an empty one)
UNMATCHED_DETAILS_QUERY = "details"
UNMATCHED_ID_PREFIX = "unmatched-"


class UnmatchedKind(StrEnum):
    STUDY = "study"  # images whose accession matches no order (key: StudyInstanceUID)
    MPPS = "mpps"  # MPPS for no scheduled order (key: the MPPS SOP Instance UID)


def unmatched_workflow_id(kind: str, key: str) -> str:
    return f"{UNMATCHED_ID_PREFIX}{kind}-{key}"
# --- end unmatched items ---
