"""FHIR R4 mappings of the order model (pure functions, JSON dicts) and the reverse for intake.

Every mapping takes the order state, a `FhirMappingConfig` and optional `refs`
(resource type -> "Type/id" on the target server); without refs, references are logical
(by business identifier). Resources come back without `id`.
"""

from radflow.domain.fhir.config import DICOM_UID_SYSTEM, FhirMappingConfig
from radflow.domain.fhir.imaging import endpoint, imaging_studies, imaging_study
from radflow.domain.fhir.intake import FhirInputError, order_from_service_request, placer_key
from radflow.domain.fhir.keys import business_identifier, search_token
from radflow.domain.fhir.patient import encounter, patient
from radflow.domain.fhir.report import diagnostic_report
from radflow.domain.fhir.request import service_request, task

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
