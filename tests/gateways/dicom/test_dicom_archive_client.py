"""ArchiveClient.forward over a real association: spooled bytes reach the archive unchanged,
whether the spool keeps them in its database or (big instances) as files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, evt

from radflow.gateways.dicom.archive_client import ArchiveClient
from radflow.gateways.dicom.spool import InstanceHeader, Spool
from radflow.gateways.dicom.storage import storage_contexts
from radflow.gateways.dicom.tcp import NODELAY_HANDLER
from radflow.devstack import free_port
from tests.dicom_synth import SyntheticStudy


@pytest.fixture
def archive() -> Iterator[tuple[int, dict[str, bytes]]]:
    """A pynetdicom SCP that keeps the raw dataset bytes of every C-STORE it gets."""
    received: dict[str, bytes] = {}

    def on_store(event) -> int:
        received[str(event.request.AffectedSOPInstanceUID)] = event.request.DataSet.getvalue()
        return 0x0000

    ae = AE(ae_title="ARCHIVE")
    for cx in storage_contexts():
        ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[NODELAY_HANDLER, (evt.EVT_C_STORE, on_store)])
    yield port, received
    server.shutdown()


def spool_files(spool: Spool, files: list[Path]) -> dict[str, bytes]:
    stored = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        raw = path.read_bytes()
        spool.store(InstanceHeader(sop_instance_uid=ds.SOPInstanceUID, sop_class_uid=ds.SOPClassUID,
                                   transfer_syntax=ds.file_meta.TransferSyntaxUID, study_uid=ds.StudyInstanceUID,
                                   series_uid=ds.SeriesInstanceUID), raw)
        stored[str(ds.SOPInstanceUID)] = raw
    return stored


def test_blobs_and_files_are_sent_byte_for_byte(tmp_path: Path, archive) -> None:
    port, received = archive
    spool = Spool(tmp_path / "spool", fsync=False, file_threshold=16 * 1024)
    small = SyntheticStudy("ACC1", series=[("CT", 3)], size=32)  # 2 KiB pixels: in the database
    big = SyntheticStudy("ACC1", study_uid=small.study_uid, series=[("MR", 2)], size=128)  # 32 KiB: files
    stored = spool_files(spool, small.write(tmp_path / "small") + big.write(tmp_path / "big"))
    kinds = [i.path is None for i in spool.instances(small.study_uid)]
    assert kinds.count(True) == 3 and kinds.count(False) == 2

    confirmed: list[str] = []
    report = ArchiveClient("127.0.0.1", port, "ARCHIVE", "RADFLOW", 10.0).forward(
        spool.instances(small.study_uid), spool.read, confirmed.append)
    assert report.stored == 5 and not report.failed and sorted(confirmed) == sorted(stored)
    for sop, raw in stored.items():
        # The archive gets the dataset exactly as spooled (after the File Meta), never re-encoded.
        assert len(received[sop]) > 1000 and raw.endswith(received[sop])


def test_an_instance_missing_from_the_spool_is_reported_not_sent(tmp_path: Path, archive) -> None:
    port, received = archive
    spool = Spool(tmp_path / "spool", fsync=False, file_threshold=16 * 1024)
    study = SyntheticStudy("ACC2", series=[("CT", 2)], size=128)
    spool_files(spool, study.write(tmp_path / "src"))
    gone, kept = spool.instances(study.study_uid)
    assert gone.path is not None
    gone.path.unlink()  # an operator cleaned up by hand
    report = ArchiveClient("127.0.0.1", port, "ARCHIVE", "RADFLOW", 10.0).forward(
        [gone, kept], spool.read, lambda sop: None)
    assert report.stored == 1 and report.failed == {gone.sop_instance_uid: "missing from the spool"}
    assert set(received) == {kept.sop_instance_uid}
