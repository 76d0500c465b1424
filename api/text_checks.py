"""Characters no identifier or filter may carry: control and invisible format characters.

A NUL in a visibility query made Temporal's SQL store fail (the API answered 503 "retry"
and echoed the SQL); a U+202E (right-to-left override) makes an accession display as
something else. Both are refused at the edge with a 422 naming the character.

`UNSAFE` lists C0/C1 controls and the Unicode format (Cf) characters of the BMP in a
regex every consumer of the OpenAPI document understands (no \\p{...} classes).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

UNSAFE = "\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb"
SAFE_PATTERN = f"^[^{UNSAFE}]*$"
_UNSAFE_RE = re.compile(f"[{UNSAFE}]")


def unsafe_character(value: str) -> str | None:
    """'U+0000 (NULL)' for the first refused character, None when the text is clean."""
    found = _UNSAFE_RE.search(value)
    if found is None:
        found = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Cs")), None)
        if found is None:
            return None
        char = found
    else:
        char = found.group()
    name = unicodedata.name(char, "") or {"Cc": "control character"}.get(unicodedata.category(char), "format character")
    return f"U+{ord(char):04X} ({name})"


def check_text(value: str) -> str:
    bad = unsafe_character(value)
    if bad is not None:
        raise ValueError(f"control or invisible format characters are not allowed: {bad}")
    return value


SafeText = Annotated[str, AfterValidator(check_text)]
"""A str parameter refused with 422 when it carries a control/format character."""


def safe(max_length: int, description: str = "", where=None, **more):  # noqa: ANN001, ANN201 - FastAPI param factory
    """A FastAPI Query/Path parameter for an identifier or filter value: length-bounded, and
    documented with SAFE_PATTERN so clients (and schemathesis) know what is refused."""
    from fastapi import Query

    factory = where or Query
    return factory(max_length=max_length, description=description or None, json_schema_extra={"pattern": SAFE_PATTERN}, **more)
