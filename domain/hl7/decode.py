"""From frame bytes to HL7 text: character sets, segment separators, batches, escapes.

Real feeds declare their charset in MSH-18 (HL7 table 0211), or declare nothing and
send Latin-1 anyway, or declare ASCII and send UTF-8. We honour a declaration that
decodes, otherwise try strict UTF-8, then cp1252, then Latin-1 (which never fails), and
remember which charset was *effective* so the DICOM worklist can declare the right
SpecificCharacterSet for the names we got.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# HL7 table 0211 -> Python codec. Multi-byte ISO 2022 sets decode through Python's
# iso2022 codecs; UTF-16/32 are not supported on MLLP here (the MSH scan is byte-wise).
_CODECS = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "ISO IR14": "shift_jis",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
}

# HL7 table 0211 -> DICOM (0008,0005) SpecificCharacterSet (PS3.3 C.12.1.1.2).
_DICOM = {
    "ASCII": "",
    "8859/1": "ISO_IR 100",
    "8859/2": "ISO_IR 101",
    "8859/3": "ISO_IR 109",
    "8859/4": "ISO_IR 110",
    "8859/5": "ISO_IR 144",
    "8859/6": "ISO_IR 127",
    "8859/7": "ISO_IR 126",
    "8859/8": "ISO_IR 138",
    "8859/9": "ISO_IR 148",
    "8859/15": "ISO_IR 203",
    "ISO IR14": "ISO_IR 13",
    "ISO IR87": "ISO 2022 IR 6\\ISO 2022 IR 87",
    "ISO IR159": "ISO 2022 IR 6\\ISO 2022 IR 159",
    "GB 18030-2000": "GB18030",
    "KS X 1001": "ISO 2022 IR 6\\ISO 2022 IR 149",
    "UNICODE": "ISO_IR 192",
    "UNICODE UTF-8": "ISO_IR 192",
}

LATIN1 = "8859/1"
UTF8 = "UNICODE UTF-8"
SEGMENT_SEPARATOR = "\r"
_BATCH_SEGMENTS = ("FHS", "BHS", "BTS", "FTS")


def _norm_charset(name: str) -> str:
    return " ".join(name.strip().upper().split())


def python_codec(msh18: str) -> str | None:
    """The Python codec for an HL7 charset name; None when unknown or empty."""
    return _CODECS.get(_norm_charset(msh18)) if msh18 else None


def dicom_charset(msh18: str) -> str:
    """DICOM SpecificCharacterSet for an HL7 MSH-18 value ("" = default repertoire).

    A charset DICOM has no term for (e.g. BIG-5) maps to UTF-8: the worklist re-encodes
    the decoded text, so any Unicode-capable set is correct.
    """
    if not msh18:
        return ""
    return _DICOM.get(_norm_charset(msh18), "ISO_IR 192")


@dataclass(frozen=True)
class EncodingChars:
    """MSH-1 and MSH-2 of one message: field, component, repetition, escape, subcomponent."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def from_msh(cls, text: str) -> EncodingChars:
        """Read the delimiters from text starting with MSH/BHS/FHS; defaults fill the gaps."""
        if len(text) < 4 or text[:3] not in ("MSH", "BHS", "FHS"):
            return cls()
        field = text[3]
        end = text.find(field, 4)
        chars = text[4:end] if end != -1 else text[4:9]
        chars = chars.split(SEGMENT_SEPARATOR, 1)[0]
        d = cls()
        return cls(
            field=field,
            component=chars[0] if len(chars) > 0 else d.component,
            repetition=chars[1] if len(chars) > 1 else d.repetition,
            escape=chars[2] if len(chars) > 2 else d.escape,
            subcomponent=chars[3] if len(chars) > 3 else d.subcomponent,
        )

    @property
    def valid(self) -> bool:
        """Distinct, printable ASCII, not letters, digits or blanks (a bare "MSH" line would
        otherwise make CR the field separator, "MSHMSH|" the letter M)."""
        chars = [self.field, self.component, self.repetition, self.escape, self.subcomponent]
        return len(set(chars)) == 5 and all(
            ch.isascii() and ch.isprintable() and not ch.isalnum() and not ch.isspace() for ch in chars
        )

    @property
    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


@dataclass(frozen=True)
class Decoded:
    text: str  # segments separated by \r, no trailing separator noise
    declared: str  # MSH-18 as sent ("" when absent)
    charset: str  # effective HL7 charset name: declared if it decoded, else what we detected
    codec: str  # the Python codec used (to encode the ACK the same way)


def read_msh18(raw: bytes) -> str:
    """MSH-18 (first repetition) from raw bytes, without decoding the whole frame."""
    start = raw.find(b"MSH")
    while start > 0 and raw[start - 1 : start] not in (b"\r", b"\n"):
        start = raw.find(b"MSH", start + 3)
    if start < 0 or len(raw) < start + 8:
        return ""
    end = len(raw)
    for sep in (b"\r", b"\n"):
        pos = raw.find(sep, start)
        if pos != -1:
            end = min(end, pos)
    line = raw[start:end]
    field_sep = line[3:4]
    if not field_sep:  # a bare "MSH" line: no header to read (the parser rejects it)
        return ""
    parts = line.split(field_sep, 18)
    # parts[0] = "MSH", parts[1] = MSH-2, so MSH-n is parts[n - 1].
    if len(parts) < 18:
        return ""
    rep = parts[1][1:2] or b"~"
    value = parts[17].split(rep, 1)[0]
    try:
        return value.decode("ascii").strip()
    except UnicodeDecodeError:
        return ""


def decode(raw: bytes) -> Decoded:
    """Frame payload -> text with \\r segment separators, honouring (or detecting) the charset."""
    declared = read_msh18(raw)
    codec = python_codec(declared)
    text: str | None = None
    charset = declared
    if codec:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            text = None
    if text is None:
        text, charset, codec = _detect(raw, declared)
    if text.startswith("\ufeff"):
        text = text[1:]
    return Decoded(text=normalise_segments(text), declared=declared, charset=charset, codec=codec or "utf-8")


def _detect(raw: bytes, declared: str) -> tuple[str, str, str]:
    if raw.isascii():
        return raw.decode("ascii"), declared, "ascii"
    try:
        return raw.decode("utf-8"), UTF8, "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), LATIN1, "cp1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), LATIN1, "latin-1"


def normalise_segments(text: str) -> str:
    """\\r\\n and \\n separators -> \\r; blank lines and trailing whitespace dropped."""
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    segments = [s for s in text.split(SEGMENT_SEPARATOR) if s.strip()]
    return SEGMENT_SEPARATOR.join(segments)


@dataclass(frozen=True)
class Envelope:
    messages: list[str]  # each starts with MSH, or is the unparseable remainder
    batch: bool  # FHS/BHS wrapper present: answer with a batch of ACKs
    header: str = ""  # the BHS (or FHS) segment, for the batch ACK's delimiters


def split_batch(text: str) -> Envelope:
    """Split a (normalised) frame into messages, dropping FHS/BHS/BTS/FTS wrappers.

    Segments before the first MSH that are not batch wrappers stay together as one
    "message" so the caller rejects it (AR) rather than silently dropping data.
    """
    messages: list[list[str]] = []
    batch = False
    header = ""
    for segment in text.split(SEGMENT_SEPARATOR):
        name = segment[:3]
        if name in _BATCH_SEGMENTS:
            batch = True
            if name in ("BHS", "FHS") and (not header or name == "BHS"):
                header = segment
            continue
        if name == "MSH" or not messages:
            messages.append([segment])
        else:
            messages[-1].append(segment)
    return Envelope([SEGMENT_SEPARATOR.join(m) for m in messages if any(s.strip() for s in m)], batch, header)


MAX_SKIP_LINES = 100  # \.sp n\ beyond this is cut to it
_FORMAT_ONLY = re.compile(r"^\.(in|ti|sk|ce|fi|nf)[+-]?\d*$")


def unescape(value: str, enc: EncodingChars = EncodingChars(), codec: str = "latin-1") -> str:
    """Resolve HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\ ...).

    \\.br\\ and \\.sp n\\ become newlines; highlighting, indentation and charset switches
    (\\H\\ \\N\\ \\.in\\ \\C..\\ \\M..\\ \\Z..\\) carry no text and are dropped.
    """
    esc = enc.escape
    if not esc or esc not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        start = value.find(esc, i)
        if start == -1:
            out.append(value[i:])
            break
        end = value.find(esc, start + 1)
        if end == -1:  # unterminated: keep literally
            out.append(value[i:])
            break
        out.append(value[i:start])
        out.append(_escape_sequence(value[start + 1 : end], enc, codec))
        i = end + 1
    return "".join(out)


def _escape_sequence(seq: str, enc: EncodingChars, codec: str) -> str:
    simple = {"F": enc.field, "S": enc.component, "T": enc.subcomponent, "R": enc.repetition, "E": enc.escape}
    if seq in simple:
        return simple[seq]
    if seq == ".br":
        return "\n"
    if seq.startswith(".sp"):
        # A sender-controlled count: cap it, or "\.sp 999999999\" would be a gigabyte of newlines.
        count = seq[3:].strip().lstrip("+")
        return "\n" * (min(int(count), MAX_SKIP_LINES) if count.isascii() and count.isdigit() and len(count) < 6 else 1)
    if seq[:1] == "X" and len(seq) > 1:
        try:
            data = bytes.fromhex(seq[1:])
        except ValueError:
            return ""
        return data.decode(codec, errors="replace")
    if seq in ("H", "N") or _FORMAT_ONLY.match(seq) or seq[:1] in ("C", "M", "Z"):
        return ""
    return ""


def escape(value: str, enc: EncodingChars = EncodingChars()) -> str:
    """Escape delimiters in free text; newlines become \\.br\\ (FT/TX convention).

    A chain of str.replace (C speed, linear): the escape character goes first, so the
    sequences inserted later are not escaped again, and newlines go last, so the "."
    of \\.br\\ is never taken for a delimiter.
    """
    if not value:
        return value
    e = enc.escape
    value = value.replace(e, f"{e}E{e}")
    for char, code in ((enc.field, "F"), (enc.component, "S"), (enc.subcomponent, "T"), (enc.repetition, "R")):
        value = value.replace(char, f"{e}{code}{e}")
    if "\r" in value or "\n" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{e}.br{e}")
    return value
