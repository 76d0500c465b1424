"""The modality of `radflow demo`: what a CT scanner asks of radflow over DICOM (pynetdicom SCU).

MWL C-FIND (RAD-5), MPPS N-CREATE IN PROGRESS and N-SET COMPLETED (RAD-6/7), C-STORE of
synthetic images (RAD-8). Blocking calls: the demo runs them in a thread, because radflow's
DICOM gateway answers from the same process.
"""

from __future__ import annotations

import socket
from collections import defaultdict
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep, ModalityWorklistInformationFind


class DicomRefused(Exception):
    """An association was refused or a DIMSE answer was not a success."""


def _nodelay(event) -> None:  # noqa: ANN001 - pynetdicom event
    # Without it every PDU waits for the peer's delayed ACK (~40-90 ms each).
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class WorklistItem:
    accession: str
    patient_id: str
    patient_name: str
    study_uid: str
    station: str
    sps_id: str
    modality: str
    start: str


class Modality:
    def __init__(self, host: str, port: int, called_aet: str, *, aet: str = "DEMOCT1", timeout_s: float = 30.0) -> None:
        self.host, self.port, self.called_aet, self.aet = host, port, called_aet, aet
        self.timeout_s = timeout_s

    def _associate(self, *contexts: str):  # noqa: ANN202 - pynetdicom Association
        ae = AE(ae_title=self.aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        for context in contexts:
            ae.add_requested_context(context)
        assoc = ae.associate(self.host, self.port, ae_title=self.called_aet, evt_handlers=[(evt.EVT_CONN_OPEN, _nodelay)])
        if not assoc.is_established:
            raise DicomRefused(f"association with {self.called_aet}@{self.host}:{self.port} not established")
        return assoc

    # ---------------------------------------------------------------- RAD-5
    def worklist(self, accession: str) -> list[WorklistItem]:
        query = Dataset()
        query.AccessionNumber = accession
        for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "RequestedProcedureID"):
            setattr(query, keyword, "")
        sps = Dataset()
        for keyword in ("ScheduledStationAETitle", "ScheduledProcedureStepID", "Modality",
                        "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime"):
            setattr(sps, keyword, "")
        query.ScheduledProcedureStepSequence = [sps]
        assoc = self._associate(ModalityWorklistInformationFind)
        items = []
        try:
            for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind):
                if status is None or status.Status not in (0xFF00, 0xFF01, 0x0000):
                    raise DicomRefused(f"C-FIND status {getattr(status, 'Status', None)!r}")
                if ds is None:
                    continue
                step = ds.ScheduledProcedureStepSequence[0]
                items.append(WorklistItem(
                    accession=ds.AccessionNumber, patient_id=ds.PatientID, patient_name=str(ds.PatientName),
                    study_uid=ds.StudyInstanceUID, station=step.ScheduledStationAETitle,
                    sps_id=step.ScheduledProcedureStepID, modality=step.Modality,
                    start=f"{step.ScheduledProcedureStepStartDate} {step.ScheduledProcedureStepStartTime}"))
        finally:
            assoc.release()
        return items

    # ---------------------------------------------------------------- RAD-6/7
    def mpps_in_progress(self, item: WorklistItem) -> str:
        ref = Dataset()
        ref.AccessionNumber = item.accession
        ref.RequestedProcedureID = item.accession
        ref.StudyInstanceUID = item.study_uid
        ref.ScheduledProcedureStepID = item.sps_id
        ref.ReferencedStudySequence = []
        ds = Dataset()
        ds.ScheduledStepAttributesSequence = [ref]
        ds.PatientName = item.patient_name
        ds.PatientID = item.patient_id
        ds.PerformedStationAETitle = self.aet
        ds.PerformedProcedureStepID = "PPS-" + item.accession
        ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = item.start.split(" ")
        ds.PerformedProcedureStepStatus = "IN PROGRESS"
        ds.Modality = item.modality
        ds.PerformedSeriesSequence = []
        uid = generate_uid()
        self._mpps(lambda a: a.send_n_create(ds, ModalityPerformedProcedureStep, uid))
        return uid

    def mpps_completed(self, uid: str, images: list[Dataset]) -> None:
        series: dict[str, list[Dataset]] = defaultdict(list)
        for image in images:
            series[image.SeriesInstanceUID].append(image)
        ds = Dataset()
        ds.PerformedProcedureStepStatus = "COMPLETED"
        ds.PerformedProcedureStepEndDate, ds.PerformedProcedureStepEndTime = images[-1].StudyDate, images[-1].StudyTime
        items = []
        for series_uid, members in series.items():
            s = Dataset()
            s.SeriesInstanceUID = series_uid
            s.PerformingPhysicianName = s.OperatorsName = s.SeriesDescription = s.RetrieveAETitle = ""
            s.ProtocolName = "demo"
            refs = []
            for image in members:
                r = Dataset()
                r.ReferencedSOPClassUID = image.SOPClassUID
                r.ReferencedSOPInstanceUID = image.SOPInstanceUID
                refs.append(r)
            s.ReferencedImageSequence = refs
            s.ReferencedNonImageCompositeSOPInstanceSequence = []
            items.append(s)
        ds.PerformedSeriesSequence = items
        self._mpps(lambda a: a.send_n_set(ds, ModalityPerformedProcedureStep, uid))

    def _mpps(self, call) -> None:  # noqa: ANN001
        assoc = self._associate(ModalityPerformedProcedureStep)
        try:
            status, _ = call(assoc)
        finally:
            assoc.release()
        if status is None or status.Status != 0x0000:
            raise DicomRefused(f"MPPS status {getattr(status, 'Status', None)!r}: {status.get('ErrorComment', '') if status else ''}")

    # ---------------------------------------------------------------- RAD-8
    def store(self, images: list[Dataset]) -> int:
        """C-STORE every image on one association; returns how many were answered success."""
        assoc = self._associate(*{str(i.SOPClassUID) for i in images})
        stored = 0
        try:
            for image in images:
                status = assoc.send_c_store(image)
                if status is None or status.Status != 0x0000:
                    raise DicomRefused(f"C-STORE status {getattr(status, 'Status', None)!r}")
                stored += 1
        finally:
            assoc.release()
        return stored
