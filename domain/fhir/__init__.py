"""FHIR R4 mappings of the order model (pure functions, JSON dicts) and the reverse for intake.

Every mapping takes the order state, a `FhirMappingConfig` and optional `refs`
(resource type -> "Type/id" on the target server); without refs, references are logical
(by business identifier). Resources come back without `id`.
"""

from domain.fhir.config import DICOM_UID_SYSTEM, FhirMappingConfig
from domain.fhir.imaging import endpoint, imaging_studies, imaging_study
from domain.fhir.intake import FhirInputError, order_from_service_request, placer_key
from domain.fhir.keys import business_identifier, search_token
from domain.fhir.patient import encounter, patient
from domain.fhir.report import diagnostic_report
from domain.fhir.request import service_request, task

__all__ = [
    "DICOM_UID_SYSTEM",
    "FhirInputError",
    "FhirMappingConfig",
    "business_identifier",
    "diagnostic_report",
    "encounter",
    "endpoint",
    "imaging_studies",
    "imaging_study",
    "order_from_service_request",
    "patient",
    "placer_key",
    "search_token",
    "service_request",
    "task",
]
