"""A small FHIR R4 server for trying radflow out and for its tests: Medplum's FHIR engine
(`@medplum/fhir-router` with its in-memory repository, Apache-2.0, from npm) behind the Node
launcher in this folder (`server.mjs` and the gaps of the in-memory repository it covers).

Not something to deploy against: a stand-in for an EHR's FHIR endpoint (deploy/fhir.md).
"""

from radflow.fhir_server.launcher import FhirServer, ensure_runtime

__all__ = ["FhirServer", "ensure_runtime"]
