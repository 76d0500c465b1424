"""C-FIND matching (PS3.4 C.2.2.2) of a query identifier against stored items.

Items are plain dicts (keyword -> str, or list of dicts for a sequence; see
`domain.dicom.mwl`). A query is compiled once per C-FIND, then used to match each
candidate and to build the response with only the requested keys.

Rules (documented for integrators):
- Empty value, or a value made only of `*`: universal matching.
- Single value: exact, case-sensitive, leading/trailing spaces ignored. PN is matched
  case-insensitively (PS3.4 lets the SCP choose; modality users type names in any case)
  and trailing empty components (`^`) are ignored.
- Wildcards `*` and `?` on text VRs (not DA/TM/DT/UI/numbers); case rule as above.
- UI: single UID or a backslash list of UIDs (list matching).
- DA/TM/DT: single value or range `A-B`, `A-`, `-B`. A TM bound is padded (lower with
  zeros, upper with the end of the hour/minute/second), so `0900-1100` includes 11:00:59.
- A `...Date` key and its `...Time` key both non-empty in the same dataset are matched
  as one combined date-time range (PS3.4 C.2.2.2.5.1): date `20300101-20300102` with time
  `1000-1800` is 1 January 10:00 to 2 January 18:00.
- Other text VRs sent with several values (`CT\\MR`) match any of them (lenient).
- Sequence key: no items (or an empty item) = universal, the stored items come back
  whole; one item = its keys must all match one stored item (any item); only matching
  stored items come back, with the requested sub-keys.
- A malformed identifier (bad date, wildcard in a UID, two items in a key sequence)
  raises `MalformedQuery`; the SCP answers a failure status instead of crashing.
- Wildcards are matched in linear time (`domain.dicom.wildcard`, never a backtracking
  regex); runs of `*` count as one. An identifier beyond the limits below raises
  `QueryTooComplex` (a failure status with the reason, see docs/limits.md): at most
  MAX_KEYS keys (nested ones included), MAX_VALUES values per key, MAX_PATTERN_CHARS
  characters and MAX_WILDCARDS wildcards per value.
- Keys radflow does not hold come back empty, and the caller may answer 0xFF01.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from radflow.domain.dicom.wildcard import Glob

Item = dict[str, Any]
Matcher = Callable[[Any], bool]

TEXT_VRS = {"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
RANGE_VRS = {"DA", "TM", "DT"}
SKIPPED_TAGS = {0x00080005}  # SpecificCharacterSet: answered from the item, never matched


# Complexity caps for one C-FIND identifier. Real modalities send a dozen keys of short
# values; these leave ample room and bound the work a single query can ask for.
MAX_KEYS = 200
MAX_VALUES = 32
MAX_PATTERN_CHARS = 256
MAX_WILDCARDS = 16


class MalformedQuery(ValueError):
    pass


class QueryTooComplex(MalformedQuery):
    """A well-formed identifier that asks for more work than radflow allows per query."""


@dataclass
class Key:
    tag: int
    keyword: str
    vr: str
    matcher: Matcher | None = None  # None = universal
    sub: Query | None = None  # sequence with keys
    exact: list[str] | None = None  # exact values usable by an index (superset filter)
    date_range: tuple[str, str] | None = None  # DA bounds ('' = open) usable by an index


@dataclass
class Query:
    keys: list[Key] = field(default_factory=list)
    combined: list[tuple[str, str, Matcher]] = field(default_factory=list)  # (date kw, time kw, matcher)
    unsupported: list[int] = field(default_factory=list)

    # ------------------------------------------------------------- matching
    def matches(self, item: Item) -> bool:
        for key in self.keys:
            if key.sub is not None:
                if not any(key.sub.matches(sub) for sub in item.get(key.keyword) or []):
                    if key.sub.is_universal() and not item.get(key.keyword):
                        continue
                    return False
            elif key.matcher is not None and not key.matcher(item.get(key.keyword, "")):
                return False
        for date_kw, time_kw, matcher in self.combined:
            if not matcher((item.get(date_kw, ""), item.get(time_kw, ""))):
                return False
        return True

    def is_universal(self) -> bool:
        return not self.combined and all(k.matcher is None and (k.sub is None or k.sub.is_universal()) for k in self.keys)

    # ------------------------------------------------------------- response
    def project(self, item: Item) -> Dataset:
        """The response identifier: requested keys only, with the item's character set."""
        ds = Dataset()
        charset = item.get("SpecificCharacterSet")
        if charset:
            ds.add(DataElement(0x00080005, "CS", charset))
        self._fill(ds, item)
        return ds

    def _fill(self, ds: Dataset, item: Item) -> None:
        for key in self.keys:
            value = item.get(key.keyword)
            if key.vr == "SQ":
                subs = value or []
                if key.sub is None or key.sub.is_empty():
                    ds.add(DataElement(key.tag, "SQ", Sequence([_whole(s) for s in subs])))
                else:
                    out = []
                    for s in subs:
                        if key.sub.matches(s):
                            sub_ds = Dataset()
                            key.sub._fill(sub_ds, s)
                            out.append(sub_ds)
                    ds.add(DataElement(key.tag, "SQ", Sequence(out)))
            else:
                ds.add(DataElement(key.tag, key.vr, value if value not in ("", None) else None))

    def is_empty(self) -> bool:
        return not self.keys

    # ------------------------------------------------------------- index hints
    def key(self, keyword: str) -> Key | None:
        for k in self.keys:
            if k.keyword == keyword:
                return k
        return None


def _whole(item: Item) -> Dataset:
    ds = Dataset()
    for keyword, value in item.items():
        tag = Tag(keyword)
        if isinstance(value, list):
            ds.add(DataElement(tag, "SQ", Sequence([_whole(v) for v in value])))
        else:
            ds.add(DataElement(tag, dictionary_VR(tag), value or None))
    return ds


# ----------------------------------------------------------------- compile
def compile_query(identifier: Dataset) -> Query:
    _check_size(identifier)
    return _compile(identifier)


def _check_size(identifier: Dataset) -> None:
    """Refuse oversized identifiers before any work is done on them."""
    keys = 0
    stack = [identifier]
    while stack:
        ds = stack.pop()
        for elem in ds:
            keys += 1
            if keys > MAX_KEYS:
                raise QueryTooComplex(f"more than {MAX_KEYS} keys in the identifier")
            if elem.VR == "SQ":
                stack.extend(elem.value or [])


def _compile(identifier: Dataset) -> Query:
    query = Query()
    values: dict[str, Any] = {}
    for elem in identifier:
        tag = int(elem.tag)
        if tag in SKIPPED_TAGS or elem.tag.group in (0x0000, 0x0002):
            continue
        if elem.tag.is_private or not elem.keyword:
            query.unsupported.append(tag)
            continue
        vr = elem.VR
        if vr == "SQ":
            items = elem.value or []
            if len(items) > 1:
                raise MalformedQuery(f"{elem.keyword}: a key sequence may hold one item, got {len(items)}")
            sub = _compile(items[0]) if items else None
            query.keys.append(Key(tag, elem.keyword, vr, sub=sub))
            if sub is not None:
                query.unsupported += sub.unsupported
            continue
        key = _compile_value(tag, elem.keyword, vr, elem.value)
        query.keys.append(key)
        values[elem.keyword] = elem.value
    _combine_date_time(query, values)
    return query


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _values(value: Any) -> list[str]:
    if isinstance(value, (MultiValue, list, tuple)):
        return [_text(v).strip() for v in value]
    return [_text(value).strip()]


def _compile_value(tag: int, keyword: str, vr: str, raw: Any) -> Key:
    key = Key(tag, keyword, vr)
    values = [v for v in _values(raw) if v != ""]
    if not values:
        return key
    if len(values) > MAX_VALUES:
        raise QueryTooComplex(f"{keyword}: more than {MAX_VALUES} values")
    if any(len(v) > MAX_PATTERN_CHARS for v in values):
        raise QueryTooComplex(f"{keyword}: value longer than {MAX_PATTERN_CHARS} characters")
    if vr in RANGE_VRS:
        if len(values) > 1:
            raise MalformedQuery(f"{keyword}: one value or one range expected")
        lo, hi = _range(vr, keyword, values[0])
        if lo or hi:
            key.matcher = _range_matcher(vr, lo, hi)
            if vr == "DA":
                key.date_range = (lo, hi)
        return key
    if vr == "UI":
        if any(c in v for v in values for c in "*?"):
            raise MalformedQuery(f"{keyword}: wildcards are not allowed in UIDs")
        wanted = set(values)
        key.matcher = lambda v: _text(v).strip() in wanted
        key.exact = sorted(wanted)
        return key
    if vr in TEXT_VRS:
        if all(set(v) <= {"*"} for v in values):
            return key  # only asterisks: universal
        matchers = [_text_matcher(vr, v) for v in values]
        key.matcher = matchers[0] if len(matchers) == 1 else (lambda v: any(m(v) for m in matchers))
        if vr != "PN" and not any(c in v for v in values for c in "*?"):
            key.exact = values
        return key
    # Numbers and other VRs: plain equality of the string forms.
    wanted = set(values)
    key.matcher = lambda v: _text(v).strip() in wanted
    return key


def _normalise_pn(value: str) -> str:
    return value.strip().rstrip("^= ").casefold()


def _text_matcher(vr: str, pattern: str) -> Matcher:
    wild = "*" in pattern or "?" in pattern
    if vr == "PN":
        if wild:
            glob = _glob(pattern.strip(), ignore_case=True)
            return lambda v: glob.match(_text(v).strip().rstrip("^= "))
        want = _normalise_pn(pattern)
        return lambda v: _normalise_pn(_text(v)) == want
    if wild:
        glob = _glob(pattern, ignore_case=False)
        return lambda v: glob.match(_text(v).strip())
    return lambda v: _text(v).strip() == pattern


_STAR_RUNS = re.compile(r"\*{2,}")


def _glob(pattern: str, *, ignore_case: bool) -> Glob:
    pattern = _STAR_RUNS.sub("*", pattern)  # `**` = `*`: runs cost nothing and count once
    wildcards = pattern.count("*") + pattern.count("?")
    if wildcards > MAX_WILDCARDS:
        raise QueryTooComplex(f"more than {MAX_WILDCARDS} wildcards in one value")
    return Glob(pattern, ignore_case=ignore_case)


# ----------------------------------------------------------------- ranges
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?")
_DT = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?")


def _range(vr: str, keyword: str, value: str) -> tuple[str, str]:
    if "-" in value and not (vr == "DT" and _is_dt_with_negative_offset(value)):
        lo, _, hi = value.partition("-")
        lo, hi = lo.strip(), hi.strip()
        return (_bound(vr, keyword, lo, upper=False) if lo else "", _bound(vr, keyword, hi, upper=True) if hi else "")
    return _bound(vr, keyword, value, upper=False), _bound(vr, keyword, value, upper=True)


def _is_dt_with_negative_offset(value: str) -> bool:
    # A DT may end in -HHMM (UTC offset); that dash is not a range separator.
    return value.count("-") == 1 and bool(_DT.fullmatch(value))


def _bound(vr: str, keyword: str, value: str, upper: bool) -> str:
    if vr == "DA":
        if not _DA.fullmatch(value):
            raise MalformedQuery(f"{keyword}: {value!r} is not a DICOM date (YYYYMMDD)")
        return value
    if vr == "TM":
        m = _TM.fullmatch(value.replace(":", ""))
        if not m:
            raise MalformedQuery(f"{keyword}: {value!r} is not a DICOM time (HHMMSS.FFFFFF)")
        return _pad_time(m, upper)
    m = _DT.fullmatch(value)
    if not m:
        raise MalformedQuery(f"{keyword}: {value!r} is not a DICOM date-time")
    # Offsets are ignored: radflow stores local times, like the modality asks in.
    digits = re.split(r"[.+-]", value)[0]
    filler = "99991231235959" if upper else "00000101000000"
    return (digits + filler[len(digits) :])[:14]


def _pad_time(m: re.Match[str], upper: bool) -> str:
    hh, mm, ss, frac = m.group(1), m.group(2), m.group(3), m.group(4)
    fill = "59" if upper else "00"
    if frac:
        digits = (frac[1:] + ("9" if upper else "0") * 6)[:6]
    else:
        digits = "999999" if upper else "000000"
    return f"{hh}{mm or fill}{ss or fill}.{digits}"


def normalise_time(value: str) -> str:
    """A stored TM as the comparable HHMMSS.FFFFFF ('' when absent or unreadable)."""
    m = _TM.fullmatch(_text(value).strip().replace(":", ""))
    if not m:
        return ""
    hh, mm, ss, frac = m.group(1), m.group(2) or "00", m.group(3) or "00", m.group(4)
    return f"{hh}{mm}{ss}.{((frac or '.')[1:] + '000000')[:6]}"


def _range_matcher(vr: str, lo: str, hi: str) -> Matcher:
    def norm(v: Any) -> str:
        text = _text(v).strip()
        if vr == "TM":
            return normalise_time(text)
        if vr == "DT":
            return text[:14]
        return text

    def match(v: Any) -> bool:
        value = norm(v)
        if not value:
            return False
        return (not lo or value >= lo) and (not hi or value <= hi)

    return match


def _combine_date_time(query: Query, values: dict[str, Any]) -> None:
    """Replace a non-empty XxxDate + XxxTime pair by one combined date-time range."""
    for date_key in [k for k in query.keys if k.vr == "DA" and k.matcher is not None]:
        time_kw = date_key.keyword[: -len("Date")] + "Time" if date_key.keyword.endswith("Date") else ""
        time_key = query.key(time_kw)
        if time_key is None or time_key.matcher is None:
            continue
        d_lo, d_hi = _range("DA", date_key.keyword, _values(values[date_key.keyword])[0])
        t_lo, t_hi = _range("TM", time_kw, _values(values[time_kw])[0])
        lo = d_lo + (t_lo or "000000.000000") if d_lo else ""
        hi = d_hi + (t_hi or "235959.999999") if d_hi else ""

        def matcher(pair: Any, lo: str = lo, hi: str = hi) -> bool:
            date, time = _text(pair[0]).strip(), normalise_time(pair[1]) or "000000.000000"
            if not date:
                return False
            value = date + time
            return (not lo or value >= lo) and (not hi or value <= hi)

        date_key.matcher = None
        time_key.matcher = None
        query.combined.append((date_key.keyword, time_kw, matcher))
