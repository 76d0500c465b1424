"""Order index keys and bucket state (pure)."""

from __future__ import annotations

from radflow.domain.order_index import IndexState, by_bucket, index_bucket, patient_index_key, placer_index_key


def test_bucket_is_stable_and_spread() -> None:
    # Persisted: a key must land in the same workflow in every process and release.
    assert index_bucket("mrn:MRN10001") == index_bucket("mrn:MRN10001")
    assert index_bucket("mrn:MRN10001") == 5  # sha256-based; Python hash() would differ per process
    assert len({index_bucket(patient_index_key(f"M{i}")) for i in range(1000)}) == 32


def test_keys_of_one_order_are_grouped_by_bucket() -> None:
    entries = {patient_index_key("M1"): ["A1"], placer_index_key("P1^EHR"): ["A1"]}
    grouped = by_bucket(entries)
    assert sorted(k for part in grouped.values() for k in part) == sorted(entries)


def test_add_is_idempotent_and_forget_drops_empty_keys() -> None:
    state = IndexState()
    state.add("mrn:M", ["A1", "A2"])
    state.add("mrn:M", ["A2", "A3"])
    assert state.entries == {"mrn:M": ["A1", "A2", "A3"]}
    state.forget("mrn:M", ["A1", "A2", "A3"])
    assert state.entries == {}


def test_drop_everywhere_counts_what_left() -> None:
    state = IndexState(entries={"mrn:M": ["A1", "A2"], "placer:P^E": ["A1"]})
    assert state.drop_everywhere({"A1", "A9"}) == 2
    assert state.entries == {"mrn:M": ["A2"]} and state.accessions() == ["A2"]
