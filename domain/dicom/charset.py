"""Specific Character Set chosen from the data itself.

The worklist carries whatever the order feed sent (MSH-18 is often missing or wrong), so
the character set is decided by what the text needs: none for plain ASCII (the default
repertoire), Latin-1 when every character fits (what most modalities render best), and
UTF-8 otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable

LATIN1 = "ISO_IR 100"
UTF8 = "ISO_IR 192"


def charset_for(texts: Iterable[str]) -> str:
    """'' when the default repertoire suffices, else the DICOM defined term to declare."""
    needed = ""
    for text in texts:
        if not text or text.isascii():
            continue
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            return UTF8
        needed = LATIN1
    return needed
