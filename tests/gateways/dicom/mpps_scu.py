"""A minimal MPPS SCU (DCMTK has none): N-CREATE IN PROGRESS, then N-SET COMPLETED/DISCONTINUED.

Blocking pynetdicom calls: tests run them with `asyncio.to_thread`, because the gateway
under test answers from the same event loop.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class Answer:
    status: int
    comment: str = ""
    error_id: int | None = None
    affected_uid: str = ""


def _nodelay(event) -> None:
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def in_progress(*, accession: str = "", requested_procedure_id: str = "", study_uid: str = "",
                patient_id: str = "MRN-MPPS", modality: str = "CT", station: str = "CT01") -> Dataset:
    ds = Dataset()
    ref = Dataset()
    ref.AccessionNumber = accession
    ref.RequestedProcedureID = requested_procedure_id
    ref.StudyInstanceUID = study_uid
    ref.ScheduledProcedureStepID = ""
    ref.ReferencedStudySequence = []
    ds.ScheduledStepAttributesSequence = [ref]
    ds.PatientName = "Synthetic^Patient"
    ds.PatientID = patient_id
    ds.PerformedStationAETitle = station
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedProcedureStepStartDate = "20300101"
    ds.PerformedProcedureStepStartTime = "090000"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = modality
    ds.PerformedSeriesSequence = []
    return ds


def completed(series: dict[str, int]) -> Dataset:
    """N-SET COMPLETED referencing `count` new instances per series UID."""
    return completed_refs({uid: [generate_uid() for _ in range(count)] for uid, count in series.items()})


def completed_refs(series: dict[str, list[str]]) -> Dataset:
    """N-SET COMPLETED referencing exactly these SOP instance UIDs per series UID."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = "20300101"
    ds.PerformedProcedureStepEndTime = "093000"
    items = []
    for series_uid, sops in series.items():
        s = Dataset()
        s.SeriesInstanceUID = series_uid
        s.PerformingPhysicianName = ""
        s.ProtocolName = "synthetic"
        s.OperatorsName = ""
        s.SeriesDescription = ""
        s.RetrieveAETitle = ""
        refs = []
        for sop in sops:
            r = Dataset()
            r.ReferencedSOPClassUID = CT_IMAGE
            r.ReferencedSOPInstanceUID = sop
            refs.append(r)
        s.ReferencedImageSequence = refs
        s.ReferencedNonImageCompositeSOPInstanceSequence = []
        items.append(s)
    ds.PerformedSeriesSequence = items
    return ds


def discontinued(reason_meaning: str, reason_code: str = "110514") -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "DISCONTINUED"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = reason_code, "DCM", reason_meaning
    ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code]
    return ds


class MppsScu:
    def __init__(self, port: int, *, aet: str = "MODALITY1", aec: str = "RADFLOW", tls: ssl.SSLContext | None = None) -> None:
        self.ae = AE(ae_title=aet)
        self.ae.add_requested_context(ModalityPerformedProcedureStep)
        self.port = port
        self.aec = aec
        self.tls_args = (tls, "localhost") if tls is not None else None  # DICOM TLS; the server certificate names localhost

    def _call(self, fn) -> Answer:
        assoc = self.ae.associate("127.0.0.1", self.port, ae_title=self.aec, evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)],
                                  tls_args=self.tls_args)
        assert assoc.is_established, "MPPS association not established"
        try:
            status, _ = fn(assoc)
        finally:
            assoc.release()
        assert status is not None, "no MPPS response"
        return Answer(int(status.Status), str(status.get("ErrorComment", "") or ""), status.get("ErrorID"),
                      str(status.get("AffectedSOPInstanceUID", "") or ""))

    def create(self, attrs: Dataset, uid: str | None) -> Answer:
        return self._call(lambda a: a.send_n_create(attrs, ModalityPerformedProcedureStep, uid))

    def set(self, mods: Dataset, uid: str) -> Answer:
        return self._call(lambda a: a.send_n_set(mods, ModalityPerformedProcedureStep, uid))
