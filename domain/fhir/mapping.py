"""One import point for the state -> resource mappings (split by resource in this package)."""

from radflow.domain.fhir.imaging import endpoint, imaging_study
from radflow.domain.fhir.keys import business_identifier, search_token
from radflow.domain.fhir.patient import encounter, patient
from radflow.domain.fhir.report import diagnostic_report
from radflow.domain.fhir.request import service_request, task

__all__ = [
    "business_identifier",
    "diagnostic_report",
    "encounter",
    "endpoint",
    "imaging_study",
    "patient",
    "search_token",
    "service_request",
    "task",
]
