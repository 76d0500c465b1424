"""FHIR intake resend detection through the order index (issue 8.5)."""

from __future__ import annotations

import pytest

from tests.api.fhir_stack import FhirStack, fhir_stack  # noqa: F401 (fixture)
from tests.api.test_fhir_api_intake import FHIR, service_request, uid

pytestmark = pytest.mark.integration


async def test_resend_without_the_accession_finds_the_order_by_its_placer(fhir_stack: FhirStack):
    acc, placer, mrn = "IX" + uid(), "PL" + uid(), "M" + uid()
    first = await fhir_stack.http.post("/fhir/ServiceRequest", json=service_request(accession=acc, placer=placer, mrn=mrn),
                                       headers=FHIR)
    assert first.status_code == 201, first.text
    # The same placer order again, this time without the accession: the same order, not a second one.
    again = await fhir_stack.http.post("/fhir/ServiceRequest", json=service_request(placer=placer, mrn=mrn), headers=FHIR)
    assert again.status_code == 200, again.text
    assert any(i.get("value") == acc for i in again.json()["identifier"])
