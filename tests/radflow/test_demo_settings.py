"""`radflow demo` points every consumer at a demo destination, and leaves out the ones it could not start."""

from __future__ import annotations

from pathlib import Path

from radflow.demo import demo_settings, missing_notice
from radflow.demo_drive import Destinations
from radflow.demo_sinks import EhrSink, FhirComponent, OrthancComponent
from radflow.infra.settings import Settings


def test_every_destination_present(tmp_path: Path) -> None:
    dest = Destinations(ehr=EhrSink("127.0.0.1", 4001), fhir=FhirComponent(tmp_path, "127.0.0.1"),
                        orthanc=OrthancComponent(tmp_path / "orthanc", "127.0.0.1", "RADFLOW", 11112, dicom_port=4002))
    s = demo_settings(Settings(_env_file=None), dest)
    assert (s.ehr_mllp_host, s.ehr_mllp_port) == ("127.0.0.1", 4001)
    assert s.fhir_base_url == dest.fhir.base_url  # type: ignore[union-attr]
    assert (s.dicom_archive_host, s.dicom_archive_port, s.dicom_archive_ae_title) == ("127.0.0.1", 4002, "DEMOPACS")
    assert s.report_consumers == ["hl7", "fhir"] and "fhir" in s.sync_consumers
    assert missing_notice(dest) == []


def test_without_node_and_orthanc_fhir_is_left_out_and_said() -> None:
    dest = Destinations(ehr=EhrSink("127.0.0.1", 4001))
    s = demo_settings(Settings(_env_file=None), dest)
    assert s.fhir_base_url == "" and "fhir" not in s.report_consumers and "fhir" not in s.sync_consumers
    assert s.report_consumers == ["hl7"]  # the order can still end DELIVERED (the EHR sink acknowledges)
    assert s.dicom_archive_host == ""  # the spool is the store
    notes = " ".join(missing_notice(dest))
    assert "no FHIR server" in notes and "Orthanc not installed" in notes
