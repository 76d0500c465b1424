"""What the HTTP API returns and accepts. Deliberately not the workflow state (`OrderState`):
the state can grow or be reshaped between releases, these shapes are the public contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from domain.definitions import OrderStatus
from domain.order import OrderState, StudyInfo, TimelineEntry
from domain.transitions import effective_status
from radflow.order_search import OrderPage, OrderSummary


# ---------------------------------------------------------------- order detail
class PatientPublic(BaseModel):
    mrn: str
    issuer: str
    name: str = Field(description="DICOM style family^given^middle^prefix^suffix")
    family_name: str
    given_name: str
    birth_date: str = Field(description="YYYYMMDD as received")
    sex: str


class ProcedurePublic(BaseModel):
    code: str
    text: str
    coding_system: str


class SchedulePublic(BaseModel):
    station_ae: str
    modality: str
    start: datetime | None
    station_name: str
    location: str
    sps_id: str
    requested_procedure_id: str


class FlagsPublic(BaseModel):
    overdue: list[str] = Field(description="NO_IMAGES, NO_FINAL_REPORT")
    needs_attention: bool
    attention_reason: str | None
    attention_step: str | None
    attention_since: datetime | None
    exceptions: int = Field(description="refused events and failed steps recorded in the timeline")


class StudyPublic(BaseModel):
    study_instance_uid: str
    series_count: int
    instance_count: int
    archive_confirmed: bool


class AttachmentPublic(BaseModel):
    content_type: str
    size: int
    sha256: str = Field(description="the document's key in the attachment store; empty for a url reference")
    title: str
    url: str


class ReportPublic(BaseModel):
    status: str
    version: int
    observed_at: datetime | None
    attachments: list[AttachmentPublic] = Field(default_factory=list, description="embedded documents (OBX ED/RP)")
    imaging_references: list[str] = Field(default_factory=list, description="DICOM UIDs the report points at")


class LanePublic(BaseModel):
    """One consumer's delivery lane (worklist, fhir, hl7, archive): see docs/workflow.md."""

    last: str = Field(description="the lane's last finished work and its outcome")
    needs_attention: bool
    attention_reason: str | None
    attention_since: datetime | None


class OrderPublic(BaseModel):
    accession: str
    status: OrderStatus = Field(description="the clinical status; a lane waiting for an operator shows in flags/lanes")
    clinical_status: OrderStatus = Field(description="same as status (orders started before v2: the status underneath NEEDS_ATTENTION)")
    placer_number: str
    filler_number: str
    priority: str
    patient: PatientPublic
    procedure: ProcedurePublic
    schedule: SchedulePublic
    report_status: str | None
    report: ReportPublic | None
    study: StudyPublic = Field(description="the primary (first) study")
    studies: list[StudyPublic] = Field(description="every study of the order, the primary first; empty until one is known")
    flags: FlagsPublic
    deliveries: dict[str, str]
    lanes: dict[str, LanePublic] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None

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
    accession: str
    status: str
    patient_id: str
    modality: str
    station_ae: str
    scheduled_start: datetime | None
    study_instance_uid: str
    needs_attention: bool
    overdue: list[str]
    started_at: datetime
    running: bool

    @classmethod
    def from_summary(cls, row: OrderSummary) -> OrderSummaryPublic:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class OrderListPublic(BaseModel):
    orders: list[OrderSummaryPublic]
    next_page_token: str | None = Field(description="pass as next_page_token for the next page; null on the last page")

    @classmethod
    def from_page(cls, page: OrderPage) -> OrderListPublic:
        return cls(orders=[OrderSummaryPublic.from_summary(r) for r in page.orders], next_page_token=page.next_page_token)


class TimelineEntryPublic(BaseModel):
    at: datetime
    source: str
    kind: str
    summary: str
    control_id: str
    status: str | None
    exception: bool
    seq: int = Field(0, description="position in the order's whole timeline (0: orders started before v2)")

    @classmethod
    def from_entry(cls, e: TimelineEntry) -> TimelineEntryPublic:
        return cls(seq=e.seq, 
            at=e.at, source=e.source.value, kind=e.kind, summary=e.summary, control_id=e.control_id,
            status=e.status.value if e.status else None, exception=e.exception,
        )


class TimelinePublic(BaseModel):
    accession: str
    entries: list[TimelineEntryPublic]
    total: int | None = Field(None, description="entries the order ever recorded (paged requests)")
    next_before: int | None = Field(None, description="`before` of the previous (older) page; null on the first page")
    next_run: str = Field("", description="`run` of the previous (older) page (the continue-as-new run holding it)")


# ---------------------------------------------------------------- commands
class ScheduleRequest(BaseModel):
    station_ae: str = Field("", max_length=16, description="scheduled station AE title")
    modality: str = Field("", max_length=16)
    start: datetime = Field(description="ISO 8601; without an offset it is taken as UTC")
    station_name: str = Field("", max_length=64)
    location: str = Field("", max_length=64)

    @model_validator(mode="after")
    def _needs_where(self) -> ScheduleRequest:
        if not self.station_ae and not self.modality:
            raise ValueError("give station_ae or modality (or both)")
        return self


class CancelRequest(BaseModel):
    reason: str = Field("", max_length=250)


class OperatorRequest(BaseModel):
    note: str = Field("", max_length=250)
    lane: str = Field("", max_length=32, description="the lane to act on (worklist, fhir, hl7, archive); empty = every lane waiting")


class EventResultPublic(BaseModel):
    accession: str
    status: OrderStatus
    changed: bool
    duplicate: bool
    message: str


class OperatorResultPublic(BaseModel):
    """The order after the decision (a skip may complete delivery; a retry shows the lane retrying)."""

    accession: str
    action: str
    status: OrderStatus
    needs_attention: bool = False
    lanes: dict[str, str] = Field(default_factory=dict)


class ErrorPublic(BaseModel):
    detail: str
    error_type: str | None = None


class HealthPublic(BaseModel):
    status: str = Field(description="ok | unavailable")
    temporal: str
    namespace: str
    task_queue: str
    detail: str = ""
