"""HL7 null semantics end to end in the domain: mapped message -> pure merge on the stored order.

Empty field = not sent (keep), `""` = delete. Stored order: tests/data/hl7/orm_o01_nw_v23.hl7.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from radflow.domain.definitions import OrderStatus
from radflow.domain.fhir.config import FhirMappingConfig
from radflow.domain.fhir.patient import patient as fhir_patient
from radflow.domain.hl7.mapping import CommandKind, map_message
from radflow.domain.hl7.parse import parse_message
from radflow.domain.order import OrderData, OrderState, PersonName
from radflow.domain.transitions import apply_event
from tests.domain.hl7_fixtures import commands, message

NOW = datetime(2030, 1, 1, 10, tzinfo=UTC)
ADT = "MSH|^~\\&|HIS|GENHOSP|RADFLOW|RAD|20240302100000||ADT^{ev}|N1|P|2.4"
ORM = "MSH|^~\\&|CPOE|GENHOSP|RADFLOW|RAD|20240302100000||ORM^O01|N2|P|2.3"
XO_ORC = "ORC|XO|PL1001^CPOE|FL2001^RIS"


def stored() -> OrderState:
    [nw] = commands("orm_o01_nw_v23.hl7")
    assert nw.kind == CommandKind.START_ORDER and nw.order is not None
    return OrderState(order=nw.order, status=OrderStatus.SCHEDULED, created_at=NOW, updated_at=NOW)


def obr(fields: dict[int, str]) -> str:
    base = {2: "PL1001^CPOE", 4: "CTHEAD^CT head without contrast^L", 18: "ACC1001"}
    base.update(fields)
    return "|".join(["OBR"] + [base.get(i, "") for i in range(1, max(base) + 1)])


def apply(*segments: str) -> tuple[OrderData, OrderData]:
    st = stored()
    before = st.order.model_copy(deep=True)
    cmds = map_message(parse_message(message(*segments)))
    assert cmds and cmds[0].kind != CommandKind.UNSUPPORTED, cmds[0].reason
    for cmd in cmds:
        assert cmd.event is not None
        out = apply_event(st, cmd.event, NOW)
        assert out.ok, out.error
    return before, st.order


Check = Callable[[OrderData, OrderData], None]


def same_except(*paths: str) -> Check:
    """Everything equal to the stored order except the dotted `paths` (checked separately)."""

    def check(before: OrderData, after: OrderData) -> None:
        a, b = before.model_dump(), after.model_dump()
        for path in paths:
            *parents, leaf = path.split(".")
            x, y = a, b
            for p in parents:
                x, y = x[p], y[p]
            x.pop(leaf), y.pop(leaf)
        assert a == b

    return check


CASES: list[tuple[str, list[str], Check, Check]] = [
    (
        "A08 with empty PID-5/7/8 keeps name, birth date and sex",
        [ADT.format(ev="A08"), "PID|1||MRN10001^^^GENHOSP^MR||||||"],
        same_except(),
        lambda b, a: None,
    ),
    (
        "A31 with a new name only changes the name (as a whole) and keeps the rest",
        [ADT.format(ev="A31"), "PID|1||MRN10001^^^GENHOSP^MR||Renamed^Alpha"],
        same_except("patient.name"),
        lambda b, a: _eq(a.patient.name, PersonName(family="Renamed", given="Alpha")),
    ),
    (
        'A08 with "" in PID-8 deletes the sex and keeps the name',
        [ADT.format(ev="A08"), 'PID|1||MRN10001^^^GENHOSP^MR|||||""'],
        same_except("patient.sex"),
        lambda b, a: _eq(a.patient.sex, ""),
    ),
    (
        'A08 with "" in PID-5 and PID-7 deletes name and birth date',
        [ADT.format(ev="A08"), 'PID|1||MRN10001^^^GENHOSP^MR||""||""|F'],
        same_except("patient.name", "patient.birth_date"),
        lambda b, a: _eq((a.patient.name, a.patient.birth_date), (PersonName(), "")),
    ),
    (
        "A40 whose PID carries only the surviving identifier keeps name, birth date and sex",
        [ADT.format(ev="A40"), "EVN|A40", "PID|1||MRN20002^^^GENHOSP^MR", "MRG|MRN10001^^^GENHOSP^MR"],
        same_except("patient.mrn"),
        lambda b, a: _eq(a.patient.mrn, "MRN20002"),
    ),
    (
        'A40 with "" in PID-8 deletes the sex of the merged orders',
        [ADT.format(ev="A40"), "EVN|A40", 'PID|1||MRN20002^^^GENHOSP^MR|||||""', "MRG|MRN10001^^^GENHOSP^MR"],
        same_except("patient.mrn", "patient.sex"),
        lambda b, a: _eq((a.patient.mrn, a.patient.sex), ("MRN20002", "")),
    ),
    (
        "ORM XO with empty PID-8, PV1 and schedule fields keeps them",
        [ORM, "PID|1||MRN10001^^^GENHOSP^MR", XO_ORC, obr({})],
        same_except(),
        lambda b, a: None,
    ),
    (
        "ORM XO changing the procedure and station replaces only those",
        [ORM, "PID|1||MRN10001^^^GENHOSP^MR||||||", XO_ORC, obr({4: "CTCHEST^CT chest^L", 21: "CT02"})],
        same_except("procedure", "schedule.station_ae"),
        lambda b, a: _eq((a.procedure.code, a.procedure.text, a.schedule.station_ae), ("CTCHEST", "CT chest", "CT02")),
    ),
    (
        'ORM XO with "" deletes sex, visit location, reason, station AE and the ordering provider',
        [ORM, 'PID|1||MRN10001^^^GENHOSP^MR|||||""', 'PV1|1||""', 'ORC|XO|PL1001^CPOE|FL2001^RIS|||||||||""',
         obr({16: '""', 21: '""', 31: '""'})],
        same_except("patient.sex", "visit.location", "reason", "schedule.station_ae", "ordering_provider"),
        lambda b, a: _eq(
            (a.patient.sex, a.visit.location, a.reason, a.schedule.station_ae, a.ordering_provider.id),
            ("", "", "", "", ""),
        ),
    ),
    (
        'ORM XO: "" in one fallback field does not delete a value another field sends',
        [ORM, "PID|1||MRN10001^^^GENHOSP^MR", 'ORC|XO|PL1001^CPOE|FL2001^RIS|||||||||""', obr({16: "0999^Other^Oscar"})],
        same_except("ordering_provider"),
        lambda b, a: _eq(a.ordering_provider.id, "0999"),
    ),
    (
        'ORM XO with "" in OBR-27.4 and no other start field deletes the scheduled start',
        [ORM, "PID|1||MRN10001^^^GENHOSP^MR", XO_ORC, obr({27: '1^^^""^^S'})],
        same_except("schedule.start"),
        lambda b, a: _eq(a.schedule.start, None),
    ),
]


def _eq(actual: object, expected: object) -> None:
    assert actual == expected


@pytest.mark.parametrize(("title", "segments", "unchanged", "changed"), CASES, ids=[c[0] for c in CASES])
def test_null_semantics(title: str, segments: list[str], unchanged: Check, changed: Check) -> None:
    before, after = apply(*segments)
    unchanged(before, after)
    changed(before, after)


def test_a08_without_any_change_is_a_resend() -> None:
    st = stored()
    [cmd] = map_message(parse_message(message(ADT.format(ev="A08"), "PID|1||MRN10001^^^GENHOSP^MR||||||")))
    assert cmd.event is not None
    out = apply_event(st, cmd.event, NOW)
    assert out.ok and not out.changed and out.duplicate


def test_full_replacement_stays_for_events_without_partial() -> None:
    """Events recorded before null semantics (and FHIR updates) still replace wholesale."""
    st = stored()
    [cmd] = map_message(parse_message(message(ADT.format(ev="A08"), "PID|1||MRN10001^^^GENHOSP^MR||||||")))
    assert cmd.event is not None and cmd.event.patient is not None
    legacy = cmd.event.model_copy(update={"partial": False, "cleared": []})
    assert apply_event(st, legacy, NOW).changed
    assert st.order.patient.sex == "" and st.order.patient.name == PersonName()


def test_fhir_patient_mirrors_the_merged_demographics() -> None:
    """A40 with only the surviving identifier: the FHIR Patient keeps name, gender and birth date."""
    st = stored()
    [merge] = map_message(parse_message(message(
        ADT.format(ev="A40"), "EVN|A40", "PID|1||MRN20002^^^GENHOSP^MR", "MRG|MRN10001^^^GENHOSP^MR")))
    assert merge.event is not None and apply_event(st, merge.event, NOW).ok
    resource = fhir_patient(st, FhirMappingConfig())
    assert (resource["gender"], resource["birthDate"], resource["name"][0]["family"]) == ("female", "1975-04-12", "Testpatient")
    [delete] = map_message(parse_message(message(ADT.format(ev="A08"), 'PID|1||MRN20002^^^GENHOSP^MR|||||""')))
    assert delete.event is not None and apply_event(st, delete.event, NOW).ok
    assert "gender" not in fhir_patient(st, FhirMappingConfig())


def test_every_order_field_has_its_null_sources() -> None:
    """A field added to the order model must say where HL7 sends it, or why it has no null semantics."""
    from pydantic import BaseModel

    from radflow.domain.hl7.mapping import ORDER_SOURCES
    from radflow.domain.merge import UNITS

    def paths(model: type[BaseModel], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for name, info in model.model_fields.items():
            kind = info.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel) and not issubclass(kind, UNITS):
                out |= paths(kind, f"{prefix}{name}.")
            else:
                out.add(prefix + name)
        return out

    # Keys never change on an update; the issuer and charset keep the stored value when empty, and "" has no meaning there.
    # patient.mrn_token is no HL7 field: OrderService derives it from patient.mrn (radflow/service/patient_search.py).
    not_nullable = {"accession", "placer_number", "placer_system", "patient.mrn", "patient.issuer", "character_set",
                    "patient.mrn_token"}
    assert paths(OrderData) - not_nullable == set(ORDER_SOURCES)
