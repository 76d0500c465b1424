"""Search parameter helpers of the FHIR facade (pure parsing; the HTTP behaviour is tested elsewhere)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from radflow.api.fhir_http import FhirError
from radflow.api.fhir_search import Token, order_reference, parse_params, token


def request(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/fhir/ServiceRequest", "query_string": query.encode(), "headers": []})


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("ServiceRequest/A1", "A1"),
        ("A1", "A1"),
        ("https://rf.test/fhir/ServiceRequest/A1", "A1"),
        ("https://rf.test/fhir/ServiceRequest/A1/_history/3", "A1"),
        ("Patient/A1", None),
        ("", None),
    ],
)
def test_order_reference(raw, expected):
    assert order_reference(raw) == expected


def test_tokens():
    assert token("sys|val") == Token("sys", "val")
    assert token("|val") == Token("", "val")
    assert token("val") == Token(None, "val")
    assert token("urn:x|a|b") == Token("urn:x", "a|b")


def test_params_and_or_count_and_format():
    params, count = parse_params(request("status=active,revoked&status=active&_count=500&_format=json"), {"status"}, 50, 200)
    assert params == {"status": [["active", "revoked"], ["active"]]}
    assert count == 200  # capped


@pytest.mark.parametrize(
    "query,code",
    [("foo=1&bar=2", "not-supported"), ("_count=-1", "value"), ("_format=xml", "not-supported"), ("_sort=date", "not-supported")],
)
def test_param_errors(query, code):
    with pytest.raises(FhirError) as err:
        parse_params(request(query), {"status"}, 50, 200)
    assert err.value.status == 400 and err.value.code == code
    if query.startswith("foo"):
        assert "bar, foo" in err.value.message
