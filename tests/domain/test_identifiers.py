"""Identifier rules applied before Temporal (domain/identifiers.py)."""

from __future__ import annotations

import pytest

from radflow.domain.identifiers import ACCESSION, LONG_ID, UID, control_character, order_problems, problem
from radflow.domain.order import OrderData, Patient, PersonName, Schedule


@pytest.mark.parametrize("ch", ["\x00", "\x1b", "\x7f", "\x85", "\u202e"])
def test_control_characters_are_found(ch: str) -> None:
    assert control_character(f"AB{ch}C") == ch
    assert "control character" in (problem("accession number", f"A{ch}", ACCESSION) or "")


def test_names_may_hold_joiners_and_accents() -> None:
    assert control_character("\u0645\u06cc\u200c\u0631\u0648\u06cc M\u00fcller") is None


def test_lengths_follow_dicom() -> None:
    assert problem("accession number", "A" * 16, ACCESSION) is None
    assert "17 characters" in (problem("accession number", "A" * 17, ACCESSION) or "")
    assert problem("x", "A" * 64, LONG_ID) is None and problem("x", "A" * 65, LONG_ID)
    assert problem("x", "A\\B", LONG_ID)  # a backslash splits a DICOM value
    assert problem("uid", "1.2.840.10008", UID) is None and problem("uid", "1.2.x", UID)


def test_order_problems_name_each_field() -> None:
    order = OrderData(accession="A1", patient=Patient(mrn="M\x00", name=PersonName(family="X" * 65)),
                      schedule=Schedule(station_ae="S" * 60_000))
    fields = [f for f, _ in order_problems(order)]
    assert fields == ["station_ae", "patient.mrn", "patient.name"]
