"""ImagingStudy, Endpoint and DiagnosticReport from order states (R4B-validated, exact fields)."""

from __future__ import annotations

import base64

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy

from radflow.domain.definitions import OrderStatus, ReportStatus
from radflow.domain.fhir import FhirMappingConfig, business_identifier, diagnostic_report, endpoint, imaging_study
from radflow.domain.order import PersonName, SeriesInfo, StudyInfo
from tests.domain.fhir_states import minimal_order, non_ascii_order, reported, state, study, v23_order, v24_order, v25_order

CFG = FhirMappingConfig(identifier_base="https://rf.test/fhir", dicomweb_base_url="https://pacs.test/dicom-web")
S = OrderStatus
DCM = "http://dicom.nema.org/resources/ontology/DCM"


# ------------------------------------------------------------------ Endpoint
def test_endpoint_exact():
    res = endpoint(CFG)
    Endpoint.model_validate(res)
    assert res["connectionType"] == {
        "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
        "code": "dicom-wado-rs",
        "display": "DICOM WADO-RS",
    }
    assert res["address"] == "https://pacs.test/dicom-web"
    assert res["status"] == "active"
    assert res["payloadMimeType"] == ["application/dicom"]
    assert business_identifier(res) == ("https://rf.test/fhir/endpoint", "radflow-dicomweb")


# ------------------------------------------------------------------ ImagingStudy
def test_imaging_study_none_until_a_study_uid_is_known():
    assert imaging_study(state(v23_order()), CFG) is None
    assert imaging_study(state(minimal_order(), S.IN_PROGRESS), CFG) is None


def test_imaging_study_registered_from_preassigned_uid():
    res = imaging_study(state(v25_order()), CFG)
    ImagingStudy.model_validate(res)
    assert res["status"] == "registered"
    assert res["identifier"][0] == {"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.2.1125.25"}
    assert res["modality"] == [{"system": DCM, "code": "CT"}]  # from the schedule
    assert "series" not in res and "numberOfInstances" not in res and "started" not in res


def test_imaging_study_available_exact():
    st = reported(v24_order(), ReportStatus.FINAL)
    res = imaging_study(st, CFG)
    ImagingStudy.model_validate(res)
    uid = "1.2.826.0.1.3680043.2.1125.99"
    assert res["status"] == "available"
    assert res["identifier"][0] == {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}
    assert res["identifier"][1]["value"] == "A24001"
    assert res["modality"] == [{"system": DCM, "code": "CT"}, {"system": DCM, "code": "SR"}]
    assert res["numberOfSeries"] == 2
    assert res["numberOfInstances"] == 30
    assert res["series"] == [
        {"uid": f"{uid}.1", "modality": {"system": DCM, "code": "CT"}, "numberOfInstances": 29},
        {"uid": f"{uid}.2", "modality": {"system": DCM, "code": "SR"}, "numberOfInstances": 1},
    ]
    assert res["started"] == "2030-03-01T09:35:00Z"
    assert res["basedOn"][0]["identifier"]["value"] == "A24001"
    assert res["basedOn"][0]["type"] == "ServiceRequest"
    assert res["endpoint"] == [{"type": "Endpoint", "identifier": {"system": "https://rf.test/fhir/endpoint", "value": "radflow-dicomweb"}}]
    assert res["subject"]["identifier"]["value"] == "M24"
    assert res["encounter"]["identifier"]["value"] == "V24"
    assert business_identifier(res) == ("urn:dicom:uid", f"urn:oid:{uid}")


def test_imaging_study_series_without_modality_falls_back():
    st = state(v23_order(), S.IN_PROGRESS)
    st.study = StudyInfo(study_instance_uid="1.2.3", instance_count=3, series=[SeriesInfo(series_instance_uid="1.2.3.1", instance_count=3)])
    res = imaging_study(st, CFG)
    ImagingStudy.model_validate(res)
    assert res["series"][0]["modality"]["code"] == "CT"  # schedule modality
    assert res["numberOfSeries"] == 1  # counted from the series list
    st.order.schedule.modality = ""
    res = imaging_study(st, CFG)
    ImagingStudy.model_validate(res)
    assert res["series"][0]["modality"]["code"] == "OT"


def test_imaging_study_cancelled_without_images_and_refs():
    st = state(v25_order(), S.CANCELLED)
    refs = {"ServiceRequest": "ServiceRequest/1", "Endpoint": "Endpoint/e", "Patient": "Patient/p", "Encounter": "Encounter/x"}
    res = imaging_study(st, CFG, refs)
    ImagingStudy.model_validate(res)
    assert res["status"] == "cancelled"
    assert res["basedOn"] == [{"reference": "ServiceRequest/1"}]
    assert res["endpoint"] == [{"reference": "Endpoint/e"}]
    assert res["subject"] == {"reference": "Patient/p"}
    assert res["encounter"] == {"reference": "Encounter/x"}


# ------------------------------------------------------------------ DiagnosticReport
def test_diagnostic_report_none_before_a_report():
    assert diagnostic_report(state(v23_order(), S.ACQUIRED, study=study()), CFG) is None


@pytest.mark.parametrize(
    "status,fhir_status",
    [(ReportStatus.PRELIMINARY, "preliminary"), (ReportStatus.FINAL, "final"), (ReportStatus.CORRECTED, "corrected")],
)
def test_diagnostic_report_status(status, fhir_status):
    res = diagnostic_report(reported(v23_order(), status), CFG)
    DiagnosticReport.model_validate(res)
    assert res["status"] == fhir_status
    assert res["presentedForm"][0]["title"] == f"CT head ({fhir_status})"


def test_diagnostic_report_exact_links_and_content():
    st = reported(v24_order(), ReportStatus.FINAL, interpreter=PersonName(family="Reader", given="Rae", prefix="Dr"))
    res = diagnostic_report(st, CFG)
    DiagnosticReport.model_validate(res)
    assert res["identifier"][0] == {"system": "https://rf.test/fhir/report", "value": "A24001"}
    assert res["identifier"][1]["type"]["coding"][0]["code"] == "ACSN"
    assert res["category"] == [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}]}]
    assert res["code"]["coding"][0] == {"system": "http://www.ama-assn.org/go/cpt", "code": "74177", "display": "CT abdomen pelvis with contrast"}
    assert res["basedOn"][0]["identifier"]["value"] == "A24001"
    assert res["subject"]["identifier"]["value"] == "M24"
    assert res["encounter"]["identifier"]["value"] == "V24"
    assert res["imagingStudy"] == [
        {"type": "ImagingStudy", "identifier": {"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.2.1125.99"}}
    ]
    assert res["effectiveDateTime"] == "2030-03-01T09:35:00Z"
    assert res["issued"] == "2030-03-01T14:00:00Z"
    assert res["conclusion"] == "No acute findings."
    assert res["resultsInterpreter"] == [{"type": "Practitioner", "display": "Dr Rae Reader"}]
    form = res["presentedForm"][0]
    assert form["contentType"] == "text/plain; charset=utf-8"
    assert form["language"] == "en"
    assert base64.b64decode(form["data"]).decode("utf-8") == "No acute findings."
    assert business_identifier(res) == ("https://rf.test/fhir/report", "A24001")


def test_diagnostic_report_server_references():
    refs = {k: f"{k}/{i}" for i, k in enumerate(["Patient", "Encounter", "ServiceRequest", "ImagingStudy"])}
    res = diagnostic_report(reported(v24_order(), ReportStatus.CORRECTED), CFG, refs)
    assert res["subject"] == {"reference": "Patient/0"}
    assert res["encounter"] == {"reference": "Encounter/1"}
    assert res["basedOn"] == [{"reference": "ServiceRequest/2"}]
    assert res["imagingStudy"] == [{"reference": "ImagingStudy/3"}]


def test_diagnostic_report_non_ascii_text_and_no_code():
    text = "Befund: kein Nachweis einer Fraktur. Größe 3 mm – unauffällig. 所见正常"
    st = reported(non_ascii_order(), ReportStatus.PRELIMINARY, text=text)
    st.order.procedure.code = ""
    st.order.procedure.text = ""
    res = diagnostic_report(st, CFG)
    model = DiagnosticReport.model_validate(res)
    assert base64.b64decode(res["presentedForm"][0]["data"]).decode("utf-8") == text
    assert model.conclusion == text
    assert res["code"] == {"coding": [{"system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}]}
    assert "resultsInterpreter" not in res
    assert res["presentedForm"][0]["title"] == "Imaging report (preliminary)"


def test_diagnostic_report_without_study_or_text():
    st = reported(v23_order(), ReportStatus.FINAL, text="")
    st.study = StudyInfo()
    res = diagnostic_report(st, CFG)
    DiagnosticReport.model_validate(res)
    assert "imagingStudy" not in res and "presentedForm" not in res and "conclusion" not in res
    assert "encounter" not in res
