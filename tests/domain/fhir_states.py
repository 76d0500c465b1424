"""Hand-built order states shaped like what the HL7 mapping makes of v2.3 / v2.4 / v2.5 orders.

Synthetic people and identifiers only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.order import (
    OrderData,
    OrderState,
    Patient,
    PersonName,
    Procedure,
    Provider,
    Report,
    Schedule,
    SeriesInfo,
    StudyInfo,
    Visit,
)

T0 = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
START = datetime(2030, 3, 1, 9, 30, tzinfo=UTC)


def state(order: OrderData, status: OrderStatus = OrderStatus.SCHEDULED, **fields) -> OrderState:
    return OrderState(order=order, status=status, created_at=T0, updated_at=T0, **fields)


def v23_order() -> OrderData:
    """ORM^O01 v2.3: accession in OBR-18, OBR-27 priority, local code, no visit."""
    return OrderData(
        accession="A23001",
        placer_number="P-23-1",
        patient=Patient(mrn="M23", issuer="HOSP", name=PersonName(family="Synthetic", given="Ann"), birth_date="19750315", sex="F"),
        procedure=Procedure(code="CTHEAD", text="CT head", coding_system="L"),
        schedule=Schedule(station_ae="CT01", modality="CT", start=START, station_name="CT room 1"),
        priority="S",
    )


def v24_order() -> OrderData:
    """ORM^O01 v2.4: inpatient visit, ordering provider, reason, CPT code."""
    return OrderData(
        accession="A24001",
        placer_number="P-24-1",
        filler_number="F-24-1",
        patient=Patient(mrn="M24", issuer="1.2.3.4.5", name=PersonName(family="Example", given="Bo", middle="C"), birth_date="19600101000000", sex="M"),
        visit=Visit(patient_class="I", visit_number="V24", location="WARD3^101^A"),
        procedure=Procedure(code="74177", text="CT abdomen pelvis with contrast", coding_system="C4"),
        schedule=Schedule(station_ae="CT02", modality="CT", start=START, sps_id="SPS24"),
        ordering_provider=Provider(id="DR7", name=PersonName(family="Order", given="Olga", prefix="Dr")),
        priority="R",
        reason="Abdominal pain",
        requested_at=T0,
    )


def v25_order() -> OrderData:
    """OMI^O23 v2.5: IPC study UID, emergency visit, LOINC code, TQ1 priority A."""
    return OrderData(
        accession="A25001",
        placer_number="P-25-1",
        filler_number="F-25-1",
        study_instance_uid="1.2.826.0.1.3680043.2.1125.25",
        patient=Patient(mrn="M25", issuer="", name=PersonName(family="Sample", given="Cy"), birth_date="2001", sex="U"),
        visit=Visit(patient_class="E", visit_number="V25"),
        procedure=Procedure(code="24627-2", text="CT Chest", coding_system="LN"),
        schedule=Schedule(modality="CT", start=START),
        priority="A",
    )


def minimal_order() -> OrderData:
    """Nothing optional: no name, sex, birth date, visit, code or schedule."""
    return OrderData(accession="MIN1", patient=Patient(mrn="M0"))


def non_ascii_order() -> OrderData:
    return OrderData(
        accession="NA1",
        patient=Patient(mrn="M-ü", issuer="KLINIK Ü", name=PersonName(family="Müller-Łukasiewicz", given="Zoë", middle="Ægir"), sex="O"),
        procedure=Procedure(code="MRKNIE", text="MRT Knie rechts", coding_system="L"),
        character_set="UNICODE UTF-8",
    )


def study(uid: str = "1.2.826.0.1.3680043.2.1125.99") -> StudyInfo:
    return StudyInfo(
        study_instance_uid=uid,
        series_count=2,
        instance_count=30,
        modality="CT",
        series=[
            SeriesInfo(series_instance_uid=uid + ".1", modality="CT", instance_count=29),
            SeriesInfo(series_instance_uid=uid + ".2", modality="SR", instance_count=1),
        ],
        stable=True,
        archive_confirmed=True,
    )


def reported(order: OrderData, status: ReportStatus, text: str = "No acute findings.", **report_fields) -> OrderState:
    return state(
        order,
        OrderStatus.REPORTED,
        study=study(),
        started_at=datetime(2030, 3, 1, 9, 35, tzinfo=UTC),
        acquired_at=datetime(2030, 3, 1, 9, 50, tzinfo=UTC),
        report=Report(status=status, text=text, observed_at=datetime(2030, 3, 1, 14, 0, tzinfo=UTC), version=1, **report_fields),
    )
