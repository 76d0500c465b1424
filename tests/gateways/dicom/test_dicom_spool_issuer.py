"""The spool keeps IssuerOfPatientID per study, and a spool from before that column still opens."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from radflow.gateways.dicom import spool as spool_module
from radflow.gateways.dicom.spool import InstanceHeader, Spool


def header(sop: str, issuer: str = "") -> InstanceHeader:
    return InstanceHeader(sop_instance_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.7", transfer_syntax="1.2.840.10008.1.2.1",
                          study_uid="1.2.3", series_uid="1.2.3.1", accession="A1", patient_id="MRN1", patient_issuer=issuer)


def test_issuer_is_kept_with_the_study(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=False)
    assert spool.store(header("1.2.3.1.1", issuer="HOSP"), b"x" * 10)
    rec = spool.study("1.2.3")
    assert rec is not None and (rec.patient_id, rec.patient_issuer) == ("MRN1", "HOSP")


def test_a_spool_without_the_issuer_column_is_migrated(tmp_path: Path) -> None:
    old_schema = spool_module._SCHEMA.replace("    patient_issuer     TEXT NOT NULL DEFAULT '',\n", "")
    assert "patient_issuer" not in old_schema
    db = sqlite3.connect(tmp_path / "index.sqlite")
    db.executescript(old_schema)
    db.execute("INSERT INTO studies (study_uid, accession, patient_id, first_received, last_received, instance_count)"
               " VALUES ('9.9', 'OLD', 'MRN9', 1.0, 1.0, 1)")
    db.commit()
    db.close()
    spool = Spool(tmp_path, fsync=False)
    rec = spool.study("9.9")
    assert rec is not None and (rec.accession, rec.patient_id, rec.patient_issuer) == ("OLD", "MRN9", "")
    assert spool.store(header("1.2.3.1.2", issuer="HOSP"), b"y" * 10)
    assert spool.study("1.2.3").patient_issuer == "HOSP"
