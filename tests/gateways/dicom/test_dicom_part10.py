"""Byte-level File Meta writer and header scan, checked against pydicom on the same bytes."""

from __future__ import annotations

from io import BytesIO

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from radflow.gateways.dicom.part10 import file_meta, scan_header
from pynetdicom.dsutils import encode

WANT = frozenset({0x00080050, 0x00080060, 0x0020000D, 0x0020000E, 0x00100020})


def dataset(with_sequences: bool) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = "CT"
    ds.PatientID = "SYN-7"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.1"
    if with_sequences:
        code = Dataset()
        code.CodeValue = "CTHEAD"
        code.CodingSchemeDesignator = "L"
        inner = Dataset()
        inner.ReferencedSOPClassUID = CTImageStorage
        inner.ReferencedSOPInstanceUID = "9.9.9"
        code.ReferencedImageSequence = Sequence([inner])  # nested, group 0008 inside an item
        ds.ProcedureCodeSequence = Sequence([code, Dataset()])  # (0008,1032)
        ds.ReferencedImageSequence = Sequence([inner])  # (0008,1140)
        ds.OtherPatientIDsSequence = Sequence([Dataset()])  # (0010,1002)
        # Modalities often send undefined lengths (delimited items and sequences): force them,
        # one nested sequence keeps a defined length.
        for holder, keyword in ((ds, "ProcedureCodeSequence"), (ds, "ReferencedImageSequence"),
                                (ds, "OtherPatientIDsSequence")):
            holder[keyword].is_undefined_length = True
            for item in holder[keyword].value:
                item.is_undefined_length_sequence_item = True
    ds.InstanceNumber = 7
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = 16
    ds.PixelData = b"\x00\x01" * 64
    return ds


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("with_sequences", [False, True])
def test_scan_finds_what_pydicom_finds(implicit: bool, with_sequences: bool) -> None:
    ds = dataset(with_sequences)
    raw = encode(ds, implicit, True)
    if with_sequences:
        assert b"\xfe\xff\xdd\xe0" in raw  # undefined-length sequences really are in the bytes
    found = scan_header(raw, WANT, implicit_vr=implicit)
    assert found is not None
    assert {t: v.rstrip(b"\x00 ").decode() for t, v in found.items()} == {
        0x00080050: "ACC0001", 0x00080060: "CT", 0x0020000D: "1.2.3.4", 0x0020000E: "1.2.3.4.1", 0x00100020: "SYN-7"}


def test_scan_gives_up_on_truncated_or_broken_bytes() -> None:
    raw = encode(dataset(True), False, True)
    cut = raw.index(b"\xfe\xff\xdd\xe0")  # inside the first sequence
    assert scan_header(raw[:cut], WANT, implicit_vr=False) is None
    assert scan_header(raw[:raw.index(b"ACC0001") + 3], WANT, implicit_vr=False) is None  # value cut short


def test_file_meta_makes_a_valid_part10_file() -> None:
    ds = dataset(True)
    raw = encode(ds, False, True)
    blob = file_meta(CTImageStorage, "1.2.3.4.5", "1.2.840.10008.1.2.1", "CT01") + raw
    back = pydicom.dcmread(BytesIO(blob))
    meta = back.file_meta
    assert (meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID) == (
        CTImageStorage, "1.2.3.4.5", "1.2.840.10008.1.2.1")
    assert meta.SourceApplicationEntityTitle == "CT01" and meta.FileMetaInformationVersion == b"\x00\x01"
    assert meta.FileMetaInformationGroupLength == len(blob) - 132 - 12 - len(raw)
    assert back.AccessionNumber == "ACC0001" and back.ProcedureCodeSequence[0].CodeValue == "CTHEAD"
    assert back.PixelData == ds.PixelData
