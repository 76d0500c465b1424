"""Example bodies shown in /docs and /redoc (synthetic data; no real patient)."""

from __future__ import annotations

from typing import Any

SUMMARY_EXAMPLE: dict[str, Any] = {
    "accession": "ACC1001", "status": "SCHEDULED", "patient_id": "MRN10001", "modality": "CT", "station_ae": "CT01",
    "scheduled_start": "2030-03-05T14:30:00Z", "study_instance_uid": "", "needs_attention": False, "overdue": [],
    "started_at": "2030-03-05T09:12:03Z", "running": True,
}

TIMELINE_ENTRY_EXAMPLE: dict[str, Any] = {
    "at": "2030-03-05T09:12:03Z", "source": "HL7", "kind": "NEW_ORDER", "summary": "order received (ORM^O01 NW)",
    "control_id": "ORM0001", "status": "SCHEDULED", "exception": False, "seq": 1,
}

ORDER_EXAMPLE: dict[str, Any] = {
    "accession": "ACC1001", "status": "REPORTED", "clinical_status": "REPORTED", "placer_number": "PL1001",
    "filler_number": "ACC1001", "priority": "R",
    "patient": {"mrn": "MRN10001", "issuer": "HOSP", "name": "DOE^JANE", "family_name": "DOE", "given_name": "JANE",
                "birth_date": "19700101", "sex": "F"},
    "procedure": {"code": "CTHEAD", "text": "CT head w/o contrast", "coding_system": "L"},
    "schedule": {"station_ae": "CT01", "modality": "CT", "start": "2030-03-05T14:30:00Z", "station_name": "CT ROOM 1",
                 "location": "RAD", "sps_id": "SPS1001", "requested_procedure_id": "RP1001"},
    "report_status": "F",
    "report": {"status": "F", "version": 1, "observed_at": "2030-03-05T16:02:00Z", "attachments": [],
               "imaging_references": []},
    "study": {"study_instance_uid": "1.2.826.0.1.3680043.8.498.1", "series_count": 2, "instance_count": 180,
              "archive_confirmed": True},
    "studies": [{"study_instance_uid": "1.2.826.0.1.3680043.8.498.1", "series_count": 2, "instance_count": 180,
                 "archive_confirmed": True}],
    "flags": {"overdue": [], "needs_attention": True, "attention_reason": "EHR refused the ORU: AR unknown patient",
              "attention_step": "hl7", "attention_since": "2030-03-05T16:03:10Z", "exceptions": 1},
    "deliveries": {"fhir": "final v1"},
    "lanes": {"hl7": {"last": "ORU final v1: refused", "needs_attention": True,
                      "attention_reason": "EHR refused the ORU: AR unknown patient",
                      "attention_since": "2030-03-05T16:03:10Z"}},
    "created_at": "2030-03-05T09:12:03Z", "updated_at": "2030-03-05T16:03:10Z", "closed_at": None,
}
