"""Loading the synthetic HL7 fixtures of tests/data/hl7 (see make_fixtures.py there)."""

from __future__ import annotations

from pathlib import Path

from radflow.domain.hl7.decode import decode, split_batch
from radflow.domain.hl7.mapping import Hl7Command, MappingConfig, map_message
from radflow.domain.hl7.parse import ParsedMessage, parse_message

DATA = Path(__file__).resolve().parent.parent / "data" / "hl7"


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parsed(name: str) -> ParsedMessage:
    d = decode(raw(name))
    return parse_message(split_batch(d.text).messages[0], d.codec)


def commands(name: str, config: MappingConfig | None = None) -> list[Hl7Command]:
    d = decode(raw(name))
    return map_message(parse_message(split_batch(d.text).messages[0], d.codec), config, d.charset)


def message(*segments: str) -> str:
    return "\r".join(segments)


def seg(name: str, fields: dict[int, str], sep: str = "|") -> str:
    """A segment with values at their HL7 positions (not for MSH)."""
    last = max(fields) if fields else 0
    return sep.join([name] + [fields.get(i, "") for i in range(1, last + 1)])
