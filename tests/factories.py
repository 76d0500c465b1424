"""Small builders for orders and events used across tests (synthetic data, no real patients)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from radflow.domain.definitions import EventSource, ReportStatus
from radflow.domain.order import (
    EventKind,
    OrderData,
    OrderEvent,
    Patient,
    PersonName,
    Procedure,
    Report,
    Schedule,
    StudyInfo,
)


def new_accession(prefix: str = "T") -> str:
    return prefix + uuid.uuid4().hex[:10].upper()


def make_order(accession: str | None = None, *, mrn: str = "MRN001", scheduled: bool = True,
               start: datetime | None = None, station: str = "CT01") -> OrderData:
    sched = Schedule()
    if scheduled:
        sched = Schedule(station_ae=station, modality="CT", start=start or datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
    return OrderData(
        accession=accession or new_accession(),
        placer_number="PL" + uuid.uuid4().hex[:6],
        patient=Patient(mrn=mrn, issuer="HOSP", name=PersonName(family="Testperson", given="Alex"), birth_date="19800101", sex="O"),
        procedure=Procedure(code="CTHEAD", text="CT head without contrast", coding_system="L"),
        schedule=sched,
    )


def event(kind: EventKind, control_id: str | None = None, **fields) -> OrderEvent:
    return OrderEvent(kind=kind, source=fields.pop("source", EventSource.HL7), control_id=control_id or uuid.uuid4().hex, **fields)


def report(status: ReportStatus, text: str = "No acute findings.") -> Report:
    return Report(status=status, text=text, observed_at=datetime(2030, 1, 1, 12, tzinfo=UTC))


def stable_study(uid: str = "1.2.3.4", series: int = 2, instances: int = 40) -> StudyInfo:
    return StudyInfo(study_instance_uid=uid, series_count=series, instance_count=instances, modality="CT")


ONE_HOUR = timedelta(hours=1)
