"""Linear-time DICOM wildcard matching (`*` any run, `?` one character).

The pattern comes from the network (a C-FIND identifier), so it must never drive a
backtracking engine: `re.fullmatch` on `.*.*.*...Z` is exponential in the number of
stars and holds the GIL the whole time (35 s for ten stars froze every association).

Here the pattern is split at its stars (runs of stars are one star). Each piece between
stars has a fixed length (one character per pattern character), so:
- the first piece must match at the start and the last one at the end;
- each middle piece is taken at its leftmost occurrence after the previous one.
Leftmost is always safe for fixed-length pieces (a later occurrence leaves less room for
what follows), so nothing is ever retried: each piece is searched once, left to right.
A piece is a tiny regex of literals and `.` (no quantifiers, no alternation), whose
search costs O(len(text) * len(piece)); with the length caps in `matching.py` a match
is a few microseconds whatever the pattern.
"""

from __future__ import annotations

import re


class Glob:
    __slots__ = ("_first", "_last", "_middle", "_starred", "_min_len")

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        pieces = pattern.split("*")
        self._starred = len(pieces) > 1
        compiled = [_piece(p, flags) for p in pieces]
        self._first = compiled[0]
        self._last = compiled[-1] if self._starred else None
        self._middle = [c for c in compiled[1:-1] if c[1]]  # empty pieces = adjacent stars
        self._min_len = sum(len(p) for p in pieces)

    def match(self, text: str) -> bool:
        if len(text) < self._min_len:
            return False
        first_rx, first_len = self._first
        if not self._starred:
            return first_len == len(text) and first_rx.fullmatch(text) is not None
        if first_len and first_rx.match(text) is None:
            return False
        assert self._last is not None
        last_rx, last_len = self._last
        end = len(text) - last_len
        if last_len and last_rx.fullmatch(text, end) is None:
            return False
        pos = first_len
        for rx, _ in self._middle:
            found = rx.search(text, pos, end)
            if found is None:
                return False
            pos = found.end()
        return pos <= end


def _piece(piece: str, flags: int) -> tuple[re.Pattern[str], int]:
    return re.compile("".join("." if c == "?" else re.escape(c) for c in piece), flags), len(piece)
