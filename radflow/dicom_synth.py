"""Synthetic DICOM studies for `radflow demo`, tests and benches (made-up patients, small pixel data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PYDICOM_IMPLEMENTATION_UID,
    SecondaryCaptureImageStorage,
    generate_uid,
)

SOP_CLASS_BY_MODALITY = {"CT": CTImageStorage, "MR": MRImageStorage, "OT": SecondaryCaptureImageStorage}


@dataclass
class SyntheticStudy:
    accession: str
    study_uid: str = field(default_factory=generate_uid)
    patient_id: str = "MRN001"  # tests.factories.make_order's default MRN: the images belong to the order
    patient_name: str = "Synthetic^Patient"
    patient_issuer: str = ""  # IssuerOfPatientID, left out when empty
    series: list[tuple[str, int]] = field(default_factory=lambda: [("CT", 3), ("CT", 2)])  # (modality, instances)
    size: int = 128  # rows = columns; 128x128x16 bit = 32 KiB of pixels

    def datasets(self):
        pixels = bytes(i % 251 for i in range(512)) * (self.size * self.size * 2 // 512)
        for s_index, (modality, count) in enumerate(self.series, start=1):
            series_uid = generate_uid()
            for i in range(1, count + 1):
                yield self._instance(modality, series_uid, s_index, i, pixels)

    def _instance(self, modality: str, series_uid: str, s_index: int, number: int, pixels: bytes) -> Dataset:
        sop_class = SOP_CLASS_BY_MODALITY.get(modality, SecondaryCaptureImageStorage)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyDate = "20300101"
        ds.StudyTime = "090000"
        ds.AccessionNumber = self.accession
        ds.Modality = modality
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        if self.patient_issuer:
            ds.IssuerOfPatientID = self.patient_issuer
        ds.PatientBirthDate = "19800101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = self.study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = s_index
        ds.InstanceNumber = number
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = self.size
        ds.Columns = self.size
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = pixels
        return ds

    def write(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for ds in self.datasets():
            path = directory / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        return paths

    @property
    def instance_count(self) -> int:
        return sum(n for _, n in self.series)
