"""Storage SCP handler over real associations (pynetdicom SCU -> AE with StorageService), no Temporal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid, CTImageStorage, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import encode

from radflow.gateways.dicom.part10 import file_meta
from radflow.gateways.dicom.storage import CANNOT_UNDERSTAND, DATASET_MISMATCH, OUT_OF_RESOURCES, SUCCESS, StorageService
from radflow.gateways.dicom.tcp import NODELAY_HANDLER
from radflow.devstack import free_port
from radflow.infra.settings import Settings
from tests.dicom_synth import SyntheticStudy


class Notes:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def instance_received(self, study_uid: str, at: float) -> None:
        self.seen.append(study_uid)


@pytest.fixture
def scp(tmp_path: Path) -> Iterator[tuple[StorageService, int, Notes]]:
    loop = asyncio.new_event_loop()
    notes = Notes()
    service = StorageService(Settings(data_dir=tmp_path), None, loop,  # type: ignore[arg-type]
                             aggregator=notes)  # type: ignore[arg-type]
    ae = AE(ae_title="RADFLOW")
    for cx in service.contexts():
        ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[NODELAY_HANDLER, *service.handlers()])
    yield service, port, notes
    server.shutdown()
    service.spool.close()
    loop.run_until_complete(asyncio.sleep(0))  # run the notifications queued by the handler threads
    loop.close()


def send(port: int, datasets: list, syntax: str = ExplicitVRLittleEndian) -> list[int]:
    ae = AE(ae_title="CT01")
    for uid in {ds.SOPClassUID for ds in datasets}:
        ae.add_requested_context(uid, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADFLOW")
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
def test_instances_are_spooled_as_received_before_success(scp, syntax: str) -> None:
    service, port, notes = scp
    study = SyntheticStudy("ACC9", series=[("CT", 2), ("MR", 1)], size=16, patient_name="Müller^Jürgen")
    sent = list(study.datasets())
    assert send(port, sent, syntax) == [SUCCESS] * 3
    spooled = {i.sop_instance_uid: i for i in service.spool.instances(study.study_uid)}
    assert set(spooled) == {ds.SOPInstanceUID for ds in sent}
    for ds in sent:
        back = pydicom.dcmread(BytesIO(service.spool.read(ds.SOPInstanceUID)))
        assert back.file_meta.TransferSyntaxUID == syntax and back.file_meta.SourceApplicationEntityTitle == "CT01"
        assert back.PixelData == ds.PixelData and back.SeriesInstanceUID == ds.SeriesInstanceUID
    rec = service.spool.study(study.study_uid)
    assert (rec.accession, rec.patient_id, rec.patient_name, rec.calling_ae) == ("ACC9", "MRN001", "Müller^Jürgen", "CT01")
    info = service.spool.study_info(study.study_uid)
    assert (info.series_count, info.instance_count, info.modality) == (2, 3, "CT\\MR")
    service.loop.run_until_complete(asyncio.sleep(0))  # the hops queued by the association thread
    assert notes.seen == [study.study_uid] * 3


def test_unusable_dataset_and_full_disk_are_never_success(scp) -> None:
    service, port, notes = scp
    no_study = next(SyntheticStudy("ACC1", size=8).datasets())
    del no_study.StudyInstanceUID
    ok, broken = list(SyntheticStudy("ACC2", series=[("CT", 2)], size=64).datasets())  # 8 KiB: needs new pages
    assert send(port, [no_study]) == [CANNOT_UNDERSTAND]

    assert send(port, [ok]) == [SUCCESS]
    pages = service.spool._db.execute("PRAGMA page_count").fetchone()[0]
    service.spool._db.execute(f"PRAGMA max_page_count = {pages}")  # the database cannot grow: disk full
    assert send(port, [broken]) == [OUT_OF_RESOURCES]
    assert [i.sop_instance_uid for i in service.spool.instances(ok.StudyInstanceUID)] == [ok.SOPInstanceUID]
    service.loop.run_until_complete(asyncio.sleep(0))
    assert notes.seen == [ok.StudyInstanceUID]  # only what was answered success


def send_files(port: int, paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """C-STORE the files' bytes as they are (pynetdicom's chunked mode sends what follows the File Meta unparsed)."""
    from pynetdicom import _config

    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title="CT01")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADFLOW")
    assert assoc.is_established
    try:
        out = []
        for path in paths:
            rsp = assoc.send_c_store(path)
            out.append((int(rsp.Status), str(rsp.get("ErrorComment", ""))))
        return out
    finally:
        assoc.release()


def test_truncated_or_incomplete_datasets_are_refused_and_not_spooled(scp, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: the header scan stopped at group 0020, so a dataset cut anywhere after it (or ending
    # before its Pixel Data) was answered Success and spooled; the modality then never resends it.
    service, port, notes = scp
    good, cut, no_pixels, other_uid = list(SyntheticStudy("ACC7", series=[("CT", 4)], size=16).datasets())
    del no_pixels.PixelData  # ends cleanly at an element boundary, without its pixels
    paths = {}
    for name, ds in (("good", good), ("cut", cut), ("no_pixels", no_pixels), ("other_uid", other_uid)):
        # The command's SOP Instance UID comes from the File Meta; "other_uid" names another instance there.
        command_uid = ds.SOPInstanceUID if name != "other_uid" else generate_uid()
        body = encode(ds, False, True)
        if name == "cut":
            body = body[:-7]  # last bytes of the pixel data lost
        paths[name] = tmp_path / f"{name}.dcm"
        paths[name].write_bytes(file_meta(ds.SOPClassUID, command_uid, ExplicitVRLittleEndian) + body)

    answers = send_files(port, [paths["cut"], paths["no_pixels"], paths["other_uid"], paths["good"]], monkeypatch)
    assert [status for status, _ in answers] == [CANNOT_UNDERSTAND, DATASET_MISMATCH, DATASET_MISMATCH, SUCCESS]
    assert "truncated" in answers[0][1]
    assert "Pixel Data" in answers[1][1] and "differ" in answers[2][1]
    assert [i.sop_instance_uid for i in service.spool.instances(good.StudyInstanceUID)] == [good.SOPInstanceUID]
    service.loop.run_until_complete(asyncio.sleep(0))
    assert notes.seen == [good.StudyInstanceUID]
