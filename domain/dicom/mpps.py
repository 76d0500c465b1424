"""Reading a Modality Performed Procedure Step (PS3.3 C.4.13-C.4.17) into plain values.

Pure: takes the N-CREATE / N-SET attribute lists as pydicom Datasets and returns what
the order workflow needs (which orders, which status, what was acquired).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from radflow.domain.order import SeriesInfo, StudyInfo

IN_PROGRESS = "IN PROGRESS"
COMPLETED = "COMPLETED"
DISCONTINUED = "DISCONTINUED"
STATUSES = (IN_PROGRESS, COMPLETED, DISCONTINUED)
FINAL_STATUSES = (COMPLETED, DISCONTINUED)


class InvalidMpps(ValueError):
    """The attribute list cannot be accepted (maps to 0x0106 / 0x0120)."""


@dataclass(frozen=True)
class ScheduledRef:
    """One item of the Scheduled Step Attributes Sequence: which order this step performs."""

    accession: str = ""
    requested_procedure_id: str = ""
    sps_id: str = ""
    study_uid: str = ""


@dataclass
class PerformedStep:
    status: str
    refs: list[ScheduledRef] = field(default_factory=list)
    modality: str = ""
    station_ae: str = ""
    pps_id: str = ""
    series: list[SeriesInfo] = field(default_factory=list)
    referenced_instances: int = 0
    discontinuation_reason: str = ""

    @property
    def study_uid(self) -> str:
        return next((r.study_uid for r in self.refs if r.study_uid), "")

    def study_info(self) -> StudyInfo:
        """What a COMPLETED step says about the study: expected counts, never received ones."""
        return StudyInfo(
            study_instance_uid=self.study_uid,
            series_count=len(self.series),
            modality=self.modality,
            series=self.series,
            expected_instance_count=self.referenced_instances,
        )


def _str(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def status_of(ds: Dataset) -> str:
    return _str(ds, "PerformedProcedureStepStatus").upper()


def parse_step(ds: Dataset) -> PerformedStep:
    """The whole step as stored (N-CREATE attributes with every N-SET merged in)."""
    status = status_of(ds)
    refs = [
        ScheduledRef(
            accession=_str(item, "AccessionNumber"),
            requested_procedure_id=_str(item, "RequestedProcedureID"),
            sps_id=_str(item, "ScheduledProcedureStepID"),
            study_uid=_str(item, "StudyInstanceUID"),
        )
        for item in ds.get("ScheduledStepAttributesSequence") or []
    ]
    series: list[SeriesInfo] = []
    instances: set[str] = set()
    modality = _str(ds, "Modality")
    for item in ds.get("PerformedSeriesSequence") or []:
        uids = [
            _str(ref, "ReferencedSOPInstanceUID")
            for seq in ("ReferencedImageSequence", "ReferencedNonImageCompositeSOPInstanceSequence")
            for ref in item.get(seq) or []
        ]
        uids = [u for u in uids if u]
        instances.update(uids)
        series.append(
            SeriesInfo(series_instance_uid=_str(item, "SeriesInstanceUID"), modality=modality, instance_count=len(set(uids)))
        )
    return PerformedStep(
        status=status,
        refs=refs,
        modality=modality,
        station_ae=_str(ds, "PerformedStationAETitle"),
        pps_id=_str(ds, "PerformedProcedureStepID"),
        series=series,
        referenced_instances=len(instances),
        discontinuation_reason=discontinuation_reason(ds),
    )


def discontinuation_reason(ds: Dataset) -> str:
    for item in ds.get("PerformedProcedureStepDiscontinuationReasonCodeSequence") or []:
        text = _str(item, "CodeMeaning") or _str(item, "CodeValue")
        if text:
            return text
    return ""


def validate_create(ds: Dataset) -> PerformedStep:
    """N-CREATE: the step must start IN PROGRESS (PS3.4 F.7.2.1)."""
    status = status_of(ds)
    if status != IN_PROGRESS:
        raise InvalidMpps(f"Performed Procedure Step Status must be IN PROGRESS on N-CREATE, got {status or 'none'!r}")
    return parse_step(ds)


def validate_set(modifications: Dataset) -> str:
    """N-SET: the new status ('' when the N-SET only updates attributes)."""
    if "PerformedProcedureStepStatus" not in modifications:
        return ""
    status = status_of(modifications)
    if status not in STATUSES:
        raise InvalidMpps(f"unknown Performed Procedure Step Status {status!r}")
    if "ScheduledStepAttributesSequence" in modifications:
        raise InvalidMpps("Scheduled Step Attributes Sequence may not be changed by N-SET")
    return status


def merge(stored: Dataset, modifications: Dataset) -> Dataset:
    """Apply an N-SET: each attribute in the modification list replaces the stored one."""
    merged = Dataset()
    merged.update(stored)
    for elem in modifications:
        merged[elem.tag] = elem
    return merged
