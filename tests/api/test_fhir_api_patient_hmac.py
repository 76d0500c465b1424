"""FHIR ServiceRequest searches by patient hash the MRN the way the orders' PatientID is hashed."""

from __future__ import annotations

import os

from radflow.service.patient_search import MrnHasher
from tests.api.fhir_stack import IDENT_BASE, FhirStack, fhir_stack  # noqa: F401 (fixture)
from tests.api.test_fhir_api_facade import get_bundle, ids, new_order, uid
from tests.waiting import eventually


async def test_patient_searches_find_orders_by_their_hashed_patient_id(fhir_stack: FhirStack) -> None:
    hasher = MrnHasher(os.urandom(32), include_clear=False)
    fhir_stack.service.mrn_hasher = hasher
    mrn = "FH" + uid()
    acc = await new_order(fhir_stack, mrn)
    found = await eventually(lambda: get_bundle(fhir_stack, "/fhir/ServiceRequest", patient=mrn), lambda b: b["total"] == 1)
    assert ids(found) == [acc]
    by_identifier = await get_bundle(fhir_stack, "/fhir/ServiceRequest", **{"patient:identifier": f"{IDENT_BASE}/mrn/HOSP|{mrn}"})
    assert ids(by_identifier) == [acc]
    by_token = await fhir_stack.service.client.count_workflows(f"PatientID = '{hasher.token(mrn)}'")
    assert by_token.count == 1
    assert (await fhir_stack.service.client.count_workflows(f"PatientID = '{mrn}'")).count == 0
