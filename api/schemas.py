"""What the HTTP API returns and accepts. Deliberately not the workflow state (`OrderState`):
the state can grow or be reshaped between releases, these shapes are the public contract."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from radflow.domain.definitions import OrderStatus
from radflow.domain.order import OrderState, StudyInfo, TimelineEntry
from radflow.domain.transitions import effective_status
from radflow.service.order_search import OrderPage, OrderSummary
from radflow.api.examples import ORDER_EXAMPLE, SUMMARY_EXAMPLE, TIMELINE_ENTRY_EXAMPLE


# ---------------------------------------------------------------- order detail
class PatientPublic(BaseModel):
    mrn: str = Field(description="medical record number (PatientID, HL7 PID-3)")
    issuer: str = Field(description="assigning authority of the MRN (IssuerOfPatientID); empty when not sent")
    name: str = Field(description="DICOM style family^given^middle^prefix^suffix")
    family_name: str = Field(description="family name")
    given_name: str = Field(description="given name")
    birth_date: str = Field(description="YYYYMMDD as received")
    sex: str = Field(description="M, F, O, U or empty, as received")


class ProcedurePublic(BaseModel):
    code: str = Field(description="requested procedure code (OBR-4 identifier)")
    text: str = Field(description="the procedure's text (OBR-4 text)")
    coding_system: str = Field(description="the code's coding system as sent (e.g. a local table name)")


class SchedulePublic(BaseModel):
    station_ae: str = Field(description="scheduled station AE title (the modality that queries the worklist)")
    modality: str = Field(description="DICOM modality, e.g. CT, MR, CR")
    start: datetime | None = Field(description="scheduled procedure step start; null while unscheduled")
    station_name: str = Field(description="scheduled station name")
    location: str = Field(description="scheduled procedure step location")
    sps_id: str = Field(description="Scheduled Procedure Step ID (0040,0009) on the worklist")
    requested_procedure_id: str = Field(description="Requested Procedure ID (0040,1001) on the worklist")


class FlagsPublic(BaseModel):
    overdue: list[str] = Field(description="NO_IMAGES, NO_FINAL_REPORT")
    needs_attention: bool = Field(description="a lane waits for an operator (retry or skip)")
    attention_reason: str | None = Field(description="why, in one line (e.g. the EHR's refusal); null when none waits")
    attention_step: str | None = Field(description="the step (lane) that waits, e.g. hl7 or fhir")
    attention_since: datetime | None = Field(description="since when it waits")
    exceptions: int = Field(description="refused events and failed steps recorded in the timeline")


class StudyPublic(BaseModel):
    study_instance_uid: str = Field(description="Study Instance UID (0020,000D); empty until known")
    series_count: int = Field(description="series received so far")
    instance_count: int = Field(description="instances received so far")
    archive_confirmed: bool = Field(description="the archive's C-FIND count matched what was sent")


class AttachmentPublic(BaseModel):
    content_type: str = Field(description="MIME type, e.g. application/pdf or text/xml (CDA)")
    size: int = Field(description="bytes")
    sha256: str = Field(description="the document's key in the attachment store; empty for a url reference")
    title: str = Field(description="the document's title as sent")
    url: str = Field(description="where the document lives when sent as a reference (OBX RP); empty when embedded")


class ReportPublic(BaseModel):
    status: str = Field(description="P preliminary, F final, C corrected (OBR-25)")
    version: int = Field(description="1 for the first report, +1 for each later one (correction)")
    observed_at: datetime | None = Field(description="observation time of the report (OBR-7/OBX-14)")
    attachments: list[AttachmentPublic] = Field(default_factory=list, description="embedded documents (OBX ED/RP)")
    imaging_references: list[str] = Field(default_factory=list, description="DICOM UIDs the report points at")


class LanePublic(BaseModel):
    """One consumer's delivery lane (worklist, fhir, hl7, archive): see docs/workflow.md."""

    last: str = Field(description="the lane's last finished work and its outcome")
    needs_attention: bool = Field(description="the lane waits for an operator (retry or skip)")
    attention_reason: str | None = Field(description="why it waits; null when it does not")
    attention_since: datetime | None = Field(description="since when it waits")


class ReadPublic(BaseModel):
    """How fresh the answer is: what a reader needs to decide whether to ask again, strongly."""

    consistency: Literal["eventual", "strong"] = Field(description=(
        "`eventual`: from the order's read model, kept current by its workflow and served without waiting for a "
        "worker; `strong`: the workflow's own state, asked by query (also for orders from before the read model)"))
    as_of: datetime = Field(description="when the order was in this state (for a strong read: when it was asked)")
    history_length: int | None = Field(description=(
        "events of the order's history this state reflects (0 = the state it was started with); null for a strong read"))
    pending: bool = Field(description=(
        "the order has events its worker has not processed yet: it may have moved on since as_of "
        "(read with consistency=strong to wait for them)"))


class OrderPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ORDER_EXAMPLE]})

    accession: str = Field(description="the order's accession number (its key everywhere)")
    status: OrderStatus = Field(description="the clinical status; a lane waiting for an operator shows in flags/lanes")
    clinical_status: OrderStatus = Field(description="same as status (orders started before v2: the status underneath NEEDS_ATTENTION)")
    placer_number: str = Field(description="placer order number (ORC-2)")
    filler_number: str = Field(description="filler order number (ORC-3)")
    priority: str = Field(description="priority as sent (e.g. S stat, R routine)")
    patient: PatientPublic = Field(description="the patient (PHI: reading it is audited)")
    procedure: ProcedurePublic = Field(description="the requested procedure")
    schedule: SchedulePublic = Field(description="where and when it is scheduled")
    report_status: str | None = Field(description="P, F or C once a report arrived; null before")
    report: ReportPublic | None = Field(description="the latest report; null before the first")
    study: StudyPublic = Field(description="the primary (first) study")
    studies: list[StudyPublic] = Field(description="every study of the order, the primary first; empty until one is known")
    flags: FlagsPublic = Field(description="overdue flags, operator attention, exception count")
    deliveries: dict[str, str] = Field(description="per report consumer (hl7, fhir): what was delivered last")
    lanes: dict[str, LanePublic] = Field(default_factory=dict, description="per consumer lane (worklist, fhir, hl7, archive)")
    created_at: datetime = Field(description="when the order was created")
    updated_at: datetime = Field(description="when the order last changed")
    closed_at: datetime | None = Field(description="when it reached a final status; null while open")
    read: ReadPublic | None = Field(default=None, description="GET /orders/{accession}: how fresh this answer is")

    @classmethod
    def from_state(cls, s: OrderState) -> OrderPublic:
        o = s.order
        report = s.report
        primary = [_study(s.study, o.study_instance_uid)] if s.study.study_instance_uid or o.study_instance_uid else []
        return cls(
            accession=o.accession,
            status=s.status,
            clinical_status=effective_status(s),
            placer_number=o.placer_number,
            filler_number=o.filler_number,
            priority=o.priority,
            patient=PatientPublic(
                mrn=o.patient.mrn,
                issuer=o.patient.issuer,
                name=o.patient.name.dicom(),
                family_name=o.patient.name.family,
                given_name=o.patient.name.given,
                birth_date=o.patient.birth_date,
                sex=o.patient.sex,
            ),
            procedure=ProcedurePublic(code=o.procedure.code, text=o.procedure.text, coding_system=o.procedure.coding_system),
            schedule=SchedulePublic(**o.schedule.model_dump(include=set(SchedulePublic.model_fields))),
            report_status=report.status.value if report else None,
            report=ReportPublic(
                status=report.status.value, version=report.version, observed_at=report.observed_at,
                attachments=[AttachmentPublic(**a.model_dump(include=set(AttachmentPublic.model_fields))) for a in report.attachments],
                imaging_references=[r.uid for r in report.imaging_references],
            ) if report else None,
            study=_study(s.study, o.study_instance_uid),
            studies=primary + [_study(x) for x in s.extra_studies],
            flags=FlagsPublic(
                overdue=[f.value for f in s.overdue],
                needs_attention=s.needs_attention,
                attention_reason=s.attention.reason if s.attention else None,
                attention_step=s.attention.step if s.attention else None,
                attention_since=s.attention.since if s.attention else None,
                exceptions=s.exceptions,
            ),
            deliveries=dict(s.deliveries),
            lanes={name: LanePublic(last=lane.last, needs_attention=lane.attention is not None,
                                    attention_reason=lane.attention.reason if lane.attention else None,
                                    attention_since=lane.attention.since if lane.attention else None)
                   for name, lane in s.lanes.items()},
            created_at=s.created_at,
            updated_at=s.updated_at,
            closed_at=s.closed_at,
        )


def _study(study: StudyInfo, announced: str = "") -> StudyPublic:
    return StudyPublic(study_instance_uid=study.study_instance_uid or announced, series_count=study.series_count,
                       instance_count=study.instance_count, archive_confirmed=study.archive_confirmed)


# ---------------------------------------------------------------- lists and timeline
class OrderSummaryPublic(BaseModel):
    accession: str = Field(description="the order's accession number")
    status: str = Field(description="OrderStatus search attribute (as of the last visibility update)")
    patient_id: str = Field(description="the MRN; empty when PatientID is a keyed hash (docs/security.md) and the "
                                        "list was not searched by `patient`: GET /orders/{accession} has it")
    modality: str = Field(description="scheduled modality")
    station_ae: str = Field(description="scheduled station AE title")
    scheduled_start: datetime | None = Field(description="scheduled start; null while unscheduled")
    study_instance_uid: str = Field(description="Study Instance UID once known")
    needs_attention: bool = Field(description="a lane waits for an operator")
    overdue: list[str] = Field(description="overdue flags (NO_IMAGES, NO_FINAL_REPORT)")
    started_at: datetime = Field(description="when the order's workflow started (order created)")
    running: bool = Field(description="the order's workflow is still running (false once it ended)")

    @classmethod
    def from_summary(cls, row: OrderSummary) -> OrderSummaryPublic:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class OrderListPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"orders": [SUMMARY_EXAMPLE], "next_page_token": None}]})

    orders: list[OrderSummaryPublic] = Field(description="one page of matching orders")
    next_page_token: str | None = Field(description="pass as next_page_token for the next page; null on the last page")

    @classmethod
    def from_page(cls, page: OrderPage) -> OrderListPublic:
        return cls(orders=[OrderSummaryPublic.from_summary(r) for r in page.orders], next_page_token=page.next_page_token)


class TimelineEntryPublic(BaseModel):
    at: datetime = Field(description="when it happened")
    source: str = Field(description="HL7, DICOM, FHIR, API, TIMER or OPERATOR")
    kind: str = Field(description="what happened, e.g. NEW_ORDER, MPPS_COMPLETED, REPORT, OPERATOR_RETRY")
    summary: str = Field(description="one line for people (no patient identifiers)")
    control_id: str = Field(description="the message's control id (MSH-10, Idempotency-Key...) when it had one")
    status: str | None = Field(description="the order's status after it; null when it did not apply")
    exception: bool = Field(description="a refused event or a failed step")
    seq: int = Field(0, description="position in the order's whole timeline (0: orders started before v2)")

    @classmethod
    def from_entry(cls, e: TimelineEntry) -> TimelineEntryPublic:
        return cls(seq=e.seq, 
            at=e.at, source=e.source.value, kind=e.kind, summary=e.summary, control_id=e.control_id,
            status=e.status.value if e.status else None, exception=e.exception,
        )


class TimelinePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"accession": "ACC1001", "entries": [TIMELINE_ENTRY_EXAMPLE]}]})

    accession: str = Field(description="the order's accession number")
    entries: list[TimelineEntryPublic] = Field(description="oldest first")
    total: int | None = Field(None, description="entries the order ever recorded (paged requests)")
    next_before: int | None = Field(None, description="`before` of the previous (older) page; null on the first page")
    next_run: str = Field("", description="`run` of the previous (older) page (the continue-as-new run holding it)")


# ---------------------------------------------------------------- commands
class ScheduleRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"station_ae": "CT01", "modality": "CT", "start": "2030-03-05T14:30:00Z"}]})

    station_ae: str = Field("", max_length=16, description="scheduled station AE title")
    modality: str = Field("", max_length=16, description="DICOM modality, e.g. CT")
    start: datetime = Field(description="ISO 8601; without an offset it is taken as UTC")
    station_name: str = Field("", max_length=64, description="scheduled station name (optional)")
    location: str = Field("", max_length=64, description="scheduled procedure step location (optional)")

    @model_validator(mode="after")
    def _needs_where(self) -> ScheduleRequest:
        if not self.station_ae and not self.modality:
            raise ValueError("give station_ae or modality (or both)")
        return self


class CancelRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "entered twice"}]})

    reason: str = Field("", max_length=250, description="why, recorded on the order's timeline")


class OperatorRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"lane": "hl7", "note": "EHR interface back up"}]})

    note: str = Field("", max_length=250, description="why, recorded on the order's timeline")
    lane: str = Field("", max_length=32, description="the lane to act on (worklist, fhir, hl7, archive); empty = every lane waiting")


class EventResultPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"accession": "ACC1001", "status": "CANCELLED", "changed": True, "duplicate": False, "message": ""}]})

    accession: str = Field(description="the order's accession number")
    status: OrderStatus = Field(description="the order's status after the event")
    changed: bool = Field(description="the event changed the order (false: it was already so)")
    duplicate: bool = Field(description="a resend of an event already applied (nothing applied twice)")
    message: str = Field(description="a note on the outcome, e.g. why nothing changed")


class OperatorResultPublic(BaseModel):
    """The order after the decision (a skip may complete delivery; a retry shows the lane retrying)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"accession": "ACC1001", "action": "retry", "status": "REPORTED", "needs_attention": False,
         "lanes": {"hl7": "retrying"}}]})

    accession: str = Field(description="the order's accession number")
    action: str = Field(description="retry or skip")
    status: OrderStatus = Field(description="the order's status after the decision")
    needs_attention: bool = Field(False, description="a lane still waits for an operator")
    lanes: dict[str, str] = Field(default_factory=dict, description="per lane acted on: what it does now")


class ErrorPublic(BaseModel):
    detail: str = Field(description="what went wrong, in one line (never server internals)")
    error_type: str | None = Field(None, description="machine-readable kind, e.g. InvalidTransition, TemporalUnavailable")


class HealthPublic(BaseModel):
    status: str = Field(description="ok | unavailable")
    temporal: str = Field(description="ok | unavailable: whether Temporal answered a health check")
    namespace: str = Field(description="the Temporal namespace this API uses")
    task_queue: str = Field(description="the task queue of the order workflows")
    detail: str = Field("", description="why it is unavailable; empty when ok")


# ---------------------------------------------------------------- bulk actions
class BulkFilterPublic(BaseModel):
    """Which orders a bulk action touches: every given field must match (at least one is needed).

    Only running orders of this deployment's task queue are considered."""

    status: OrderStatus | None = Field(None, description="order status, e.g. REPORTED")
    lane: str | None = Field(None, max_length=32, description="a lane waiting for an operator: worklist, fhir, hl7 or archive")
    station: str | None = Field(None, max_length=16, description="scheduled station AE title")
    modality: str | None = Field(None, max_length=16, description="scheduled modality, e.g. CT")
    procedure: str | None = Field(None, max_length=64, description="requested procedure code")
    needs_attention: bool | None = Field(None, description="true: some lane waits for an operator; false: none does")
    created_from: datetime | None = Field(None, description="order created at or after (ISO 8601)")
    created_to: datetime | None = Field(None, description="order created at or before")
    updated_from: datetime | None = Field(None, description="order last changed at or after")
    updated_to: datetime | None = Field(None, description="order last changed at or before")


class BulkRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"filter": {"lane": "hl7", "station": "CT01"}, "dry_run": True, "note": "EHR interface back up"}]})

    filter: BulkFilterPublic = Field(description="the orders to act on")
    dry_run: bool = Field(False, description="only list what matches; nothing is changed")
    note: str = Field("", max_length=250, description="why (required unless dry_run): on each order's timeline; "
                                                      "for cancel it is the cancel reason")
    lane: str = Field("", max_length=32, description="retry/skip: the lane to act on (default: the filter's lane, "
                                                     "else every lane waiting)")

    @model_validator(mode="after")
    def _needs_note(self) -> BulkRequest:
        if not self.dry_run and not self.note.strip():
            raise ValueError("a note (why) is required for a bulk action that is not a dry run")
        return self


class BulkItemPublic(BaseModel):
    accession: str = Field(description="the order")
    outcome: str = Field(description="done | refused (the order said no: reason in detail) | failed (could not be "
                                     "applied now: retry)")
    status: OrderStatus | None = Field(None, description="the order's status after the action; null when not applied")
    detail: str = Field("", description="the refusal or failure reason, or a note on what was done")


class BulkResultPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "action": "retry", "dry_run": False, "candidates": 3, "matched": ["ACC1001", "ACC1002"],
        "not_matching": {"ACC1003": "lane hl7 is not waiting for an operator"}, "visibility_asked": 1,
        "results": [{"accession": "ACC1001", "outcome": "done", "status": "REPORTED", "detail": "hl7: retrying"},
                    {"accession": "ACC1002", "outcome": "refused", "status": None,
                     "detail": "no lane of ACC1002 is waiting for an operator"}],
        "done": 1, "refused": 1, "failed": 0}]})

    action: str = Field(description="retry, skip or cancel")
    dry_run: bool = Field(description="true: nothing was changed")
    candidates: int = Field(description="orders Temporal visibility listed for the filter (eventually consistent)")
    matched: list[str] = Field(description="accessions whose exact current state matches the filter (acted on "
                                           "unless dry_run)")
    not_matching: dict[str, str] = Field(description="candidates whose exact state no longer matches, and why")
    visibility_asked: int = Field(description="2 when visibility's first answer was empty and it was asked again")
    results: list[BulkItemPublic] = Field(description="one per order acted on, and one (failed) per candidate whose "
                                                      "state could not be read; a dry run has only the latter")
    done: int = Field(description="orders the action was applied to")
    refused: int = Field(description="orders that refused it (e.g. nothing waiting any more)")
    failed: int = Field(description="orders it could not be applied to now (Temporal unavailable...)")
