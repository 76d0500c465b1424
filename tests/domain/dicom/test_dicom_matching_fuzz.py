"""Property tests (hypothesis, bounded) for C-FIND matching: the linear wildcard matcher agrees with a
plain reference matcher, hostile patterns stay cheap, and no identifier makes compile/match/project raise
anything but MalformedQuery."""

from __future__ import annotations

import time

import pytest
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from radflow.domain.dicom.matching import MalformedQuery, compile_query
from radflow.domain.dicom.wildcard import Glob
from tests.domain.dicom.test_dicom_matching import ITEM

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on over-long values we send on purpose


def reference(pattern: str, text: str, ignore_case: bool) -> bool:
    """Textbook dynamic programming over (pattern position, text position): obviously right, O(n*m)."""
    if ignore_case:
        pattern, text = pattern.lower(), text.lower()

    @lru_cache(maxsize=None)
    def m(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(text)
        c = pattern[i]
        if c == "*":
            return m(i + 1, j) or (j < len(text) and m(i, j + 1))
        return j < len(text) and (c == "?" or c == text[j]) and m(i + 1, j + 1)

    return m(0, 0)


SMALL = st.text(alphabet="abAB", max_size=10)
PATTERNS = st.text(alphabet="abAB*?", max_size=10)


@settings(max_examples=1500, deadline=None)
@given(PATTERNS, SMALL, st.booleans())
def test_glob_agrees_with_the_reference(pattern: str, text: str, ignore_case: bool) -> None:
    assert Glob(pattern, ignore_case=ignore_case).match(text) is reference(pattern, text, ignore_case)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["*", "?", "a", "Z", "**"]), min_size=1, max_size=40), st.integers(10, 200))
def test_hostile_patterns_against_long_values_stay_cheap(pieces: list[str], length: int) -> None:
    # The old regex translation needed 35 s for `**********Z` against one name; any of these
    # would take seconds to hours that way. One match here is microseconds; the bound is generous.
    glob = Glob("".join(pieces), ignore_case=True)
    started = time.perf_counter()
    for text in ("a" * length, "aZ" * (length // 2), "Q" * length):
        glob.match(text)
    assert time.perf_counter() - started < 0.5


KEYWORDS = ["PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID",
            "PatientBirthDate", "IssuerOfPatientID", "PatientWeight"]
SPS_KEYWORDS = ["ScheduledStationAETitle", "Modality", "ScheduledProcedureStepStartDate",
                "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID"]
VALUES = st.one_of(
    st.text(max_size=20),
    st.text(alphabet="0123456789-.*?:^=\\ ", max_size=30),
    st.text(alphabet="*?", max_size=300),
    st.lists(st.text(alphabet="ABC*?1", max_size=5), max_size=40),
)


def build(keys: dict[str, object], sps: dict[str, object] | None, extra_items: int) -> Dataset | None:
    ds = Dataset()
    try:
        for keyword, value in keys.items():
            setattr(ds, keyword, value)
        if sps is not None:
            item = Dataset()
            for keyword, value in sps.items():
                setattr(item, keyword, value)
            ds.ScheduledProcedureStepSequence = [item] + [Dataset() for _ in range(extra_items)]
    except (ValueError, TypeError, OverflowError):
        return None  # pydicom refuses to hold the value at all: nothing a peer could send
    return ds


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.dictionaries(st.sampled_from(KEYWORDS), VALUES, max_size=5),
       st.none() | st.dictionaries(st.sampled_from(SPS_KEYWORDS), VALUES, max_size=4),
       st.integers(0, 2))
def test_any_identifier_compiles_matches_and_projects_or_is_refused(keys, sps, extra_items) -> None:
    ds = build(keys, sps, extra_items)
    if ds is None:
        return
    try:
        query = compile_query(ds)
    except MalformedQuery as err:
        assert str(err)  # a reason for the ErrorComment
        return
    query.matches(ITEM)
    query.project(ITEM)
