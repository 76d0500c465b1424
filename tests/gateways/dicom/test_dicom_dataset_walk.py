"""The C-STORE completeness walk: whole datasets pass in every syntax, any cut inside an element is refused,
and no byte string makes it raise anything but DatasetError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage
from pynetdicom.dsutils import encode

from radflow.gateways.dicom.dataset_walk import PIXEL_DATA, DatasetError, walk_dataset

WANT = frozenset({0x00080018, 0x0020000D})
SYNTAXES = [(True, True), (False, True), (False, False)]  # (implicit, little endian)


def dataset(encapsulated: bool = False) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3.4.5"
    code = Dataset()
    code.CodeValue = "CTHEAD"
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "9.9.9"
    code.ReferencedImageSequence = Sequence([inner])
    ds.ProcedureCodeSequence = Sequence([code, Dataset()])
    ds.StudyInstanceUID = "1.2.3.4"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = 16
    if encapsulated:
        ds.PixelData = encapsulate([b"\x01" * 10, b"\x02" * 6])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = b"\x00\x01" * 16
    for elem in ds.iterall():
        if elem.VR == "SQ":
            elem.is_undefined_length = True  # modalities often send delimited sequences and items
            for item in elem.value:
                item.is_undefined_length_sequence_item = True
    return ds


@pytest.mark.parametrize(("implicit", "little"), SYNTAXES)
def test_whole_dataset_passes_and_every_cut_inside_its_last_elements_is_refused(implicit: bool, little: bool) -> None:
    raw = encode(dataset(), implicit, little)
    values, present = walk_dataset(raw, WANT, implicit_vr=implicit, little_endian=little, note=frozenset({PIXEL_DATA}))
    assert values[0x00080018].rstrip(b"\x00") == b"1.2.3.4.5" and values[0x0020000D].rstrip(b"\x00") == b"1.2.3.4"
    assert present == {PIXEL_DATA}
    full = dataset()
    boundaries = set()  # where a shorter dataset ends cleanly: after each top-level element
    for n in range(1, len(full) + 1):
        part = Dataset()
        for elem in list(full)[:n]:
            part.add(elem)
        boundaries.add(len(encode(part, implicit, little)))
    start = raw.index(b"CTHEAD")  # from inside the delimited sequence to the last pixel byte
    refused = 0
    for cut in range(start, len(raw)):
        if cut in boundaries:
            walk_dataset(raw[:cut], WANT, implicit_vr=implicit, little_endian=little)  # whole, only shorter
            continue
        with pytest.raises(DatasetError, match="truncated"):
            walk_dataset(raw[:cut], WANT, implicit_vr=implicit, little_endian=little)
        refused += 1
    assert refused > len(raw) - start - len(full)


def test_encapsulated_pixel_data_is_walked_to_its_delimiter() -> None:
    raw = encode(dataset(encapsulated=True), False, True)
    _, present = walk_dataset(raw, WANT, implicit_vr=False, note=frozenset({PIXEL_DATA}))
    assert present == {PIXEL_DATA}
    for cut in (1, 8, 9):  # the sequence delimiter, the last fragment
        with pytest.raises(DatasetError, match="truncated"):
            walk_dataset(raw[:-cut], WANT, implicit_vr=False)


def test_undefined_length_on_a_plain_vr_and_deep_nesting_are_refused() -> None:
    bogus = b"\x10\x00\x10\x00PN" + b"\x00\x00"[:0] + b"\xff\xff" + b"A" * 4  # 16-bit length 0xFFFF past the end
    with pytest.raises(DatasetError):
        walk_dataset(bogus, WANT, implicit_vr=False)
    nested = b""
    for _ in range(40):  # undefined-length sequences inside undefined-length items, never closed
        nested += b"\x08\x00\x32\x10SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    with pytest.raises(DatasetError):
        walk_dataset(nested, WANT, implicit_vr=False)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans(), st.booleans())
def test_arbitrary_bytes_raise_only_dataset_error(raw: bytes, implicit: bool, little: bool) -> None:
    try:
        walk_dataset(raw, WANT, implicit_vr=implicit, little_endian=little)
    except DatasetError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_real_datasets_raise_only_dataset_error(data: st.DataObject) -> None:
    implicit, little = data.draw(st.sampled_from(SYNTAXES))
    encapsulated = data.draw(st.booleans()) and (implicit, little) == (False, True)
    raw = bytearray(encode(dataset(encapsulated=encapsulated), implicit, little))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        walk_dataset(bytes(raw), WANT, implicit_vr=implicit, little_endian=little)
    except DatasetError:
        pass
