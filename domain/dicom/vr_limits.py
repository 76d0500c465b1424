"""Fit worklist values into their VR's maximum length (PS3.5 6.2, Table 6.2-1).

Order feeds carry station AE titles, SPS ids and descriptions longer than DICOM allows;
served as-is, strict modalities refuse the whole worklist response (or truncate at a
byte, breaking a multi-byte character). Values are cut here instead, once, when the
worklist item is built:
- the limit counts characters, as the standard does for these VRs, so a Python string
  slice never splits a multi-byte character in whatever character set the item is
  encoded; a cut never leaves a combining mark without its base character either;
- PN is limited per component group (alphabetic=ideographic=phonetic), 64 each;
- UIDs, dates and times are never cut (a shortened UID is another UID): they are
  validated where they enter radflow.
The caller gets the keywords that were cut (never the values: they may be PHI).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR

MAX_CHARS = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "ST": 1024, "LT": 10240, "UC": 0, "UT": 0}


@lru_cache(maxsize=256)
def _limit(keyword: str) -> tuple[str, int]:
    try:
        vr = dictionary_VR(keyword)
    except KeyError:
        return "", 0
    return vr, MAX_CHARS.get(vr, 0)


def cut(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters, at a character boundary, trailing spaces dropped."""
    if len(text) <= limit:
        return text
    end = limit
    while end > 0 and unicodedata.combining(text[end]):
        end -= 1  # keep a base character and its combining marks together
    return text[:end].rstrip()


def fit_value(keyword: str, value: str) -> str:
    vr, limit = _limit(keyword)
    if not limit or not value:
        return value
    if vr == "PN":
        return "=".join(cut(group, limit) for group in value.split("="))
    return cut(value, limit)


def fit_item(item: dict[str, Any], cut_keywords: list[str]) -> dict[str, Any]:
    """A copy of the item (nested sequences included) with every value within its VR; cut keywords appended."""
    out: dict[str, Any] = {}
    for keyword, value in item.items():
        if isinstance(value, list):
            out[keyword] = [fit_item(sub, cut_keywords) for sub in value]
        elif isinstance(value, str):
            fitted = fit_value(keyword, value)
            if fitted != value:
                cut_keywords.append(keyword)
            out[keyword] = fitted
        else:
            out[keyword] = value
    return out
