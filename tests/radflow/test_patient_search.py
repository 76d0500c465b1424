"""PatientID as a keyed hash of the MRN, and MRN searches that hash the query the same way."""

from __future__ import annotations

import base64
import os

import pytest

from radflow.domain.definitions import OrderStatus
from radflow.domain.order import OrderData, Patient
from radflow.service.order_search import OrderFilter
from radflow.service.ordering import order_search_attributes
from radflow.domain import definitions as d
from radflow.service.patient_search import MrnHasher, ensure_hmac_key_file, is_token, load_hmac_key
from radflow.infra.secret_files import KeyFileError


def test_token_is_keyed_stable_and_hides_the_mrn() -> None:
    key = os.urandom(32)
    hasher = MrnHasher(key)
    token = hasher.token("MRN-4711")
    assert is_token(token) and "4711" not in token
    assert MrnHasher(key).token("MRN-4711") == token  # every process with the key agrees
    assert MrnHasher(os.urandom(32)).token("MRN-4711") != token  # without the key, no match
    assert hasher.token("MRN-4712") != token
    assert hasher.search_terms("MRN-4711") == [token, "MRN-4711"]  # transition: old orders carry the MRN
    assert MrnHasher(key, include_clear=False).search_terms("MRN-4711") == [token]


def test_the_order_starts_with_the_token_and_searches_ask_for_it() -> None:
    hasher = MrnHasher(os.urandom(32), include_clear=False)
    order = OrderData(accession="A1", patient=Patient(mrn="MRN-4711", mrn_token=hasher.token("MRN-4711")))
    sa = order_search_attributes(order, OrderStatus.ORDERED)
    assert sa.get(d.SA_PATIENT_ID) == hasher.token("MRN-4711")
    query = OrderFilter(patient="MRN-4711").to_query("q", hasher.search_terms("MRN-4711"))
    assert f"PatientID IN ('{hasher.token('MRN-4711')}')" in query and "'MRN-4711'" not in query


def test_key_file(tmp_path) -> None:
    path = tmp_path / "hmac"
    assert ensure_hmac_key_file(path) and not ensure_hmac_key_file(path)
    assert len(load_hmac_key(path)) == 32
    path.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(KeyFileError, match="at least 32 bytes"):
        load_hmac_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by group/others"):
        load_hmac_key(path)
