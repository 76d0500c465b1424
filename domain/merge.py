"""HL7 null semantics as a pure merge: apply a partial update to the stored order.

A partial update carries every mapped field; an empty value means "not sent: keep what
is stored", and a path listed in `cleared` was sent as `""` ("delete"). Composite values
(a person's name, a provider, the procedure code) are replaced as a unit when sent, the
way HL7 treats a field: "DOE^JOHN" after "DOE^JOHN^A" drops the middle name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from pydantic import BaseModel

from radflow.domain.order import PersonName, Procedure, Provider

M = TypeVar("M", bound=BaseModel)

# Replaced whole when sent (one HL7 field each: XPN/XCN/CE), never merged component-wise.
UNITS: tuple[type[BaseModel], ...] = (PersonName, Provider, Procedure)


def _empty(value: object) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, BaseModel):
        return value == type(value)()
    return False


def _default(model: type[BaseModel], name: str) -> object:
    return model.model_fields[name].get_default(call_default_factory=True)


def merge_partial(stored: M, update: M, cleared: Iterable[str] = (), prefix: str = "") -> M:
    """`stored` with the sent values of `update`; paths in `cleared` (dotted, relative to
    the model, e.g. "patient.sex") go back to their default."""
    gone = set(cleared)
    values: dict[str, object] = {}
    for name in type(update).model_fields:
        path = prefix + name
        new, old = getattr(update, name), getattr(stored, name)
        if path in gone:
            values[name] = _default(type(update), name)
        elif isinstance(new, BaseModel) and not isinstance(new, UNITS) and isinstance(old, BaseModel):
            values[name] = merge_partial(old, new, gone, path + ".")
        elif _empty(new):
            values[name] = old
        else:
            values[name] = new
    return update.model_copy(update=values)


def sub_paths(cleared: Iterable[str], prefix: str) -> list[str]:
    """The cleared paths under `prefix` ("patient."), relative to it."""
    return [p[len(prefix):] for p in cleared if p.startswith(prefix)]
