"""spool_export: spooled instances (database or file) come out as .dcm files DICOM tools read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom

from radflow.gateways.dicom.spool import InstanceHeader, Spool
from tests.dicom_synth import SyntheticStudy


def test_exports_a_study_as_readable_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", fsync=False, file_threshold=16 * 1024)
    small = SyntheticStudy("ACC1", series=[("CT", 2)], size=32)
    big = SyntheticStudy("ACC1", study_uid=small.study_uid, series=[("MR", 1)], size=128)
    sops = []
    for path in small.write(tmp_path / "a") + big.write(tmp_path / "b"):
        ds = pydicom.dcmread(path)
        spool.store(InstanceHeader(ds.SOPInstanceUID, ds.SOPClassUID, ds.file_meta.TransferSyntaxUID,
                                   ds.StudyInstanceUID, ds.SeriesInstanceUID), path.read_bytes())
        sops.append(str(ds.SOPInstanceUID))
    spool.close()

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "radflow.gateways.dicom.spool_export", str(tmp_path / "spool"),
                           small.study_uid, str(out)], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr
    assert sorted(p.stem for p in out.glob("*.dcm")) == sorted(sops)
    for sop in sops:
        ds = pydicom.dcmread(out / f"{sop}.dcm")
        assert ds.SOPInstanceUID == sop and len(ds.PixelData) in (32 * 32 * 2, 128 * 128 * 2)

    one = subprocess.run([sys.executable, "-m", "radflow.gateways.dicom.spool_export", str(tmp_path / "spool"),
                          small.study_uid, str(tmp_path / "one"), "--sop", sops[0]], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[3])
    assert one.returncode == 0 and [p.stem for p in (tmp_path / "one").glob("*.dcm")] == [sops[0]]
