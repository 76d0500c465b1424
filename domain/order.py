"""The pure order model: what an imaging order is, independent of HL7, DICOM or FHIR.

These models are also Temporal payloads (pydantic data converter), so they carry plain
values only: identifiers, strings, datetimes, never parsed protocol objects.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from radflow.domain.definitions import EventSource, OrderStatus, OverdueFlag, ReportStatus


class PersonName(BaseModel):
    family: str = ""
    given: str = ""
    middle: str = ""
    prefix: str = ""
    suffix: str = ""

    def dicom(self) -> str:
        """DICOM PN: family^given^middle^prefix^suffix with trailing empties trimmed."""
        parts = [self.family, self.given, self.middle, self.prefix, self.suffix]
        return "^".join(parts).rstrip("^")


class Provider(BaseModel):
    id: str = ""
    name: PersonName = Field(default_factory=PersonName)


class Patient(BaseModel):
    mrn: str
    issuer: str = ""  # assigning authority (PID-3.4), DICOM IssuerOfPatientID
    name: PersonName = Field(default_factory=PersonName)
    birth_date: str = ""  # YYYYMMDD as sent (HL7 DTM truncated to the date)
    sex: str = ""  # HL7 table 0001 / DICOM: M, F, O, U
    # Keyed hash of the MRN for the PatientID search attribute, set by OrderService when a
    # search HMAC key is configured ("" = the MRN itself is the attribute; radflow/service/patient_search.py).
    mrn_token: str = ""


class PatientKey(BaseModel):
    """Identifies a patient across feeds: MRN within its assigning authority."""

    mrn: str
    issuer: str = ""


class Visit(BaseModel):
    patient_class: str = ""  # PV1-2: I, O, E, ...
    visit_number: str = ""  # PV1-19 (Admission ID on the worklist)
    location: str = ""


class Procedure(BaseModel):
    code: str = ""
    text: str = ""
    coding_system: str = ""


class Schedule(BaseModel):
    station_ae: str = ""
    modality: str = ""
    start: datetime | None = None
    station_name: str = ""
    location: str = ""
    sps_id: str = ""  # Scheduled Procedure Step ID
    requested_procedure_id: str = ""
    protocol: Procedure = Field(default_factory=Procedure)  # IPC-6: Scheduled Protocol Code Sequence on the worklist

    def is_scheduled(self) -> bool:
        return bool(self.start and (self.station_ae or self.modality))


class OrderData(BaseModel):
    """Everything an order message (NW/XO, FHIR ServiceRequest) says about the order."""

    accession: str
    placer_number: str = ""
    placer_system: str = ""  # identifier system a FHIR placer used (kept so its searches match); "" = ours
    filler_number: str = ""
    patient: Patient
    visit: Visit = Field(default_factory=Visit)
    procedure: Procedure = Field(default_factory=Procedure)
    schedule: Schedule = Field(default_factory=Schedule)
    ordering_provider: Provider = Field(default_factory=Provider)
    referring_physician: PersonName = Field(default_factory=PersonName)
    priority: str = ""  # HL7 TQ priority: S (stat), A (asap), R (routine)
    reason: str = ""
    requested_at: datetime | None = None
    study_instance_uid: str = ""
    character_set: str = ""  # MSH-18 as received; DICOM SpecificCharacterSet is derived from it


class Attachment(BaseModel):
    """A document embedded in a report version (OBX ED), by reference only.

    The bytes live in the attachment store (radflow/infra/attachments.py), addressed by
    SHA-256, so workflow history carries ~150 bytes per document, never the PDF. An RP
    row pointing at an external document has a `url` and no bytes (sha256 "").
    """

    sha256: str = ""  # hex digest of the decoded bytes; "" for a url-only reference
    content_type: str
    size: int = 0
    sha1_b64: str = ""  # base64 SHA-1: what FHIR R4 Attachment.hash holds
    title: str = ""  # OBX-3 text (e.g. "Report PDF")
    code: str = ""  # OBX-3 as sent (identifier^text^system), re-emitted in the forwarded ORU
    url: str = ""


class ImagingReference(BaseModel):
    """A DICOM UID a report row points at (OBX with a Study/Series/SOP Instance UID)."""

    level: str  # "study" | "series" | "instance" | "sop_class" | "uid"
    uid: str


class Report(BaseModel):
    status: ReportStatus
    text: str = ""
    attachments: list[Attachment] = Field(default_factory=list)
    imaging_references: list[ImagingReference] = Field(default_factory=list)
    observed_at: datetime | None = None
    interpreter: PersonName = Field(default_factory=PersonName)
    received_control_id: str = ""
    version: int = 0  # bumped on each report event, so consumers can order deliveries

    def has_content(self) -> bool:
        """Text or a document a reader can open (UID rows alone are not a report)."""
        return bool(self.text.strip()) or bool(self.attachments)


class StudyInfo(BaseModel):
    """What the DICOM side knows about the study; counts, never instances."""

    study_instance_uid: str = ""
    patient_id: str = ""  # PatientID (0010,0020) of the images, "" when unknown (MPPS, operator link)
    patient_issuer: str = ""  # IssuerOfPatientID (0010,0021) when sent
    series_count: int = 0
    instance_count: int = 0
    modality: str = ""
    series: list[SeriesInfo] = Field(default_factory=list)
    expected_instance_count: int = 0  # from MPPS COMPLETED references; 0 = unknown
    stable: bool = False  # the quiet period elapsed at least once
    archive_confirmed: bool = False
    # The task queue of the DICOM gateway whose spool holds the study ("" = the shared queue,
    # events from before gateway queues): archive_study runs there (issue 12).
    archive_queue: str = ""


class SeriesInfo(BaseModel):
    series_instance_uid: str
    modality: str = ""
    instance_count: int = 0


StudyInfo.model_rebuild()


class EventKind(StrEnum):
    NEW_ORDER = "NEW_ORDER"
    ORDER_CHANGED = "ORDER_CHANGED"  # ORC XO
    STATUS_CHANGED = "STATUS_CHANGED"  # ORC SC with ORC-5
    CANCEL = "CANCEL"  # ORC CA / FHIR revoked / API
    DISCONTINUE = "DISCONTINUE"  # ORC DC
    SCHEDULE = "SCHEDULE"  # API schedule of an unscheduled order
    PATIENT_UPDATED = "PATIENT_UPDATED"  # ADT A08/A31
    PATIENT_MERGED = "PATIENT_MERGED"  # ADT A40
    REPORT = "REPORT"  # ORU with OBR-25 P/F/C
    PROCEDURE_STARTED = "PROCEDURE_STARTED"  # MPPS IN PROGRESS
    PROCEDURE_COMPLETED = "PROCEDURE_COMPLETED"  # MPPS COMPLETED
    PROCEDURE_DISCONTINUED = "PROCEDURE_DISCONTINUED"  # MPPS DISCONTINUED
    IMAGES_ARRIVING = "IMAGES_ARRIVING"  # first instance of the study seen
    STUDY_STABLE = "STUDY_STABLE"  # quiet period elapsed, with counts
    STUDY_LINKED = "STUDY_LINKED"  # operator linked an unmatched study
    ACQUISITION_CONFIRMED = "ACQUISITION_CONFIRMED"  # internal: archive steps succeeded


class OrderEvent(BaseModel):
    """The single event interface: every gateway turns its message into one of these."""

    kind: EventKind
    source: EventSource
    control_id: str = ""  # MSH-10, DICOM message id, FHIR request id...
    at: datetime | None = None  # when the sender says it happened
    order: OrderData | None = None  # NEW_ORDER / ORDER_CHANGED
    order_status: str = ""  # STATUS_CHANGED: HL7 ORC-5 (SC, IP, CM, ...)
    schedule: Schedule | None = None
    patient: Patient | None = None  # PATIENT_UPDATED / PATIENT_MERGED (the surviving patient)
    merged_from: PatientKey | None = None  # PATIENT_MERGED: the retired MRN
    report: Report | None = None
    study: StudyInfo | None = None
    reason: str = ""
    actor: str = ""  # API events: the authenticated caller, shown on the timeline ("" = unknown / auth off)
    # HL7 null semantics (domain.merge): when `partial`, empty values in `order`/`patient`
    # were not sent (keep what is stored) and `cleared` lists the paths sent as "" (delete),
    # e.g. "patient.sex". Events without it (FHIR, histories before it) replace wholesale.
    partial: bool = False
    cleared: list[str] = Field(default_factory=list)
    # Resend detection key when the control id alone is not unique (HL7: sender + MSH-10 +
    # content hash); "" = control_id. The timeline keeps showing control_id.
    message_key: str = ""
    repairs: list[str] = Field(default_factory=list)  # what the gateway repaired in the message


class EventResult(BaseModel):
    """Answer of the event update: what the gateway acknowledges."""

    accession: str
    status: OrderStatus
    changed: bool
    duplicate: bool = False
    message: str = ""


class TimelineEntry(BaseModel):
    at: datetime
    source: EventSource
    kind: str
    summary: str
    control_id: str = ""
    status: OrderStatus | None = None  # status after the entry
    exception: bool = False
    seq: int = 0  # v2: 1-based position in the order's whole story (across continue-as-new runs)


class Attention(BaseModel):
    reason: str
    step: str
    since: datetime
    attempts: int = 0


class LaneState(BaseModel):
    """One consumer's delivery lane (ImagingOrder v2): what it last sent, and whether it waits for an operator.

    A lane mirrors the latest order state: it compares these marks with the order's and sends
    the current snapshot once for everything that changed since (docs/workflow.md "Lanes").
    """

    mirror_version: int = 0  # OrderState.mirror_version last synced (or skipped)
    report_version: int = 0  # Report.version last delivered (or skipped)
    acquired_count: int = 0  # study instance count last confirmed by the acquisition activity
    pending_kinds: list[str] = Field(default_factory=list)  # event kinds mirrored since the last sync
    last: str = ""  # "<work> <outcome>" of the last finished activity
    attention: Attention | None = None  # retries spent: waits for an operator (retry / skip)


class OrderPolicy(BaseModel):
    """Per-order configuration, fixed at start so replays see the same values."""

    no_images_after_s: float = 4 * 3600  # after the scheduled start
    no_report_after_s: float = 24 * 3600  # after acquisition
    retention_after_close_s: float = 7 * 24 * 3600  # corrections accepted this long after delivery
    expire_after_s: float = 7 * 24 * 3600  # scheduled, not started this long after its start: EXPIRED
    unreported_close_after_s: float = 90 * 24 * 3600  # acquired, no final report this long after: UNREPORTED
    timeline_kept: int = 100  # timeline entries carried across continue-as-new (older ones stay in earlier runs)
    history_soft_limit: int = 4_000  # continue-as-new beyond this many history events
    archive_timeout_s: float = 6 * 3600  # one archive_study attempt, as long as it heartbeats
    archive_heartbeat_s: float = 60.0  # no progress reported this long: the attempt is retried
    # On a gateway's queue: not picked up this long (that gateway is down or gone) -> lane attention.
    archive_pickup_timeout_s: float = 4 * 3600
    step_max_attempts: int = 5
    step_initial_interval_s: float = 1.0
    step_max_interval_s: float = 60.0
    step_timeout_s: float = 30.0
    report_consumers: list[str] = Field(default_factory=lambda: ["hl7"])
    sync_consumers: list[str] = Field(default_factory=list)
    acquisition_consumers: list[str] = Field(default_factory=list)


class OrderState(BaseModel):
    """The workflow's state, read through the `state` query; not an API schema."""

    order: OrderData
    status: OrderStatus
    status_before_attention: OrderStatus | None = None
    report: Report | None = None
    study: StudyInfo = Field(default_factory=StudyInfo)  # the primary (first) study
    extra_studies: list[StudyInfo] = Field(default_factory=list)  # further studies of the same patient
    overdue: list[OverdueFlag] = Field(default_factory=list)
    attention: Attention | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None  # first IN_PROGRESS (MPPS / first image): ImagingStudy.started
    acquired_at: datetime | None = None
    closed_at: datetime | None = None
    previous_patients: list[PatientKey] = Field(default_factory=list)
    deliveries: dict[str, str] = Field(default_factory=dict)  # consumer -> last outcome
    seen_control_ids: list[str] = Field(default_factory=list)  # bounded, for resend detection
    timeline: list[TimelineEntry] = Field(default_factory=list)
    exceptions: int = 0
    # ImagingOrder v2 only:
    lanes: dict[str, LaneState] = Field(default_factory=dict)
    mirror_version: int = 0  # bumped when what the sync lanes mirror changed
    mirror_key: str = ""  # fingerprint of that mirrored view
    timeline_total: int = 0  # entries ever recorded (the timeline keeps the newest `timeline_kept`)
    previous_run_id: str = ""  # the run before the last continue-as-new: older timeline entries
    runs: int = 1

    @property
    def needs_attention(self) -> bool:
        return any(lane.attention is not None for lane in self.lanes.values()) or self.attention is not None

    def studies(self) -> list[StudyInfo]:
        """Every study of the order, the primary first (empty until a Study Instance UID is known)."""
        primary = [self.study] if self.study.study_instance_uid else []
        return primary + self.extra_studies


class StartOrder(BaseModel):
    """Workflow input: the new order, the event that created it, and the policy."""

    order: OrderData
    source: EventSource
    control_id: str = ""
    received_at: datetime | None = None
    policy: OrderPolicy = Field(default_factory=OrderPolicy)
    carried: OrderState | None = None  # continue-as-new
    repairs: list[str] = Field(default_factory=list)  # what the gateway repaired in the message
    # The workflow patches in effect from the first task, without markers (definitions.ORDER_BASELINE);
    # 0: ask the history, as for orders started before baselines existed.
    baseline: int = 0


class OperatorAction(BaseModel):
    action: str  # "retry" | "skip"
    note: str = ""
    lane: str = ""  # v2: the lane to act on ("fhir", "hl7", ...); "" = every lane waiting for an operator
    actor: str = ""  # who decided: the API caller's authenticated name ("" = unknown / auth off)
    via: str = ""  # where it came from when unauthenticated ("api"); "" = the Temporal UI / CLI directly


class OperatorResult(BaseModel):
    """The order after the decision was applied (a skip may have completed delivery)."""

    accession: str
    action: str
    status: OrderStatus
    needs_attention: bool = False
    lanes: dict[str, str] = Field(default_factory=dict)  # lane -> "waiting for operator" / "retrying" / last outcome


class AllocateRequest(BaseModel):
    placer_key: str  # "<placer number>^<placer application>"
    prefix: str


class AllocatorState(BaseModel):
    next_seq: int = 1
    recent: dict[str, str] = Field(default_factory=dict)  # placer_key -> accession, bounded


class StepRequest(BaseModel):
    """Input of every delivery/sync activity: a snapshot, never a protocol object."""

    consumer: str
    milestone: str  # the event kind (or "report") that triggered the step
    accession: str
    milestones: list[str] = Field(default_factory=list)  # v2 sync lanes: every event kind coalesced into this sync
    state: OrderState  # timeline stripped


class StepResult(BaseModel):
    outcome: str  # "delivered" | "not_configured" | "skipped"
    detail: str = ""
