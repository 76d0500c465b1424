"""Accession <-> FHIR id: valid ids, reversible, canonical."""

from __future__ import annotations

import pytest

from radflow.domain.fhir.ids import FHIR_ID, NotAFhirId, accession_from_id, fhir_id


@pytest.mark.parametrize(
    "accession,expected",
    [
        ("ACC1001", "ACC1001"),  # the usual accession is its own id
        ("FON_0d70c6c8", "FON.5F0d70c6c8"),
        ("A.B", "A.2EB"),
        ("RN 7/2", "RN.207.2F2"),
        ("Ü1", ".C3.9C1"),
    ],
)
def test_ids_are_valid_and_reversible(accession: str, expected: str) -> None:
    assert fhir_id(accession) == expected
    assert FHIR_ID.fullmatch(expected)
    assert accession_from_id(expected) == accession


@pytest.mark.parametrize("resource_id", ["FON_0d70c6c8", "A.2e", "A.ZZ", "A.", ".FF", "A.41", "x" * 65, ""])
def test_ids_radflow_never_issues_name_nothing(resource_id: str) -> None:
    # Not FHIR ids, broken escapes, invalid UTF-8, non-canonical ("A.41" is "AA" written twice).
    assert accession_from_id(resource_id) is None


def test_an_accession_too_long_once_escaped_is_refused() -> None:
    with pytest.raises(NotAFhirId):
        fhir_id("Ü" * 11)
