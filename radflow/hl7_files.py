"""`radflow send-hl7`: read HL7 v2 files, send their messages over MLLP, report the ACKs."""

from __future__ import annotations

import re
import ssl
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from radflow.progress import progress

_FRAME = re.compile(rb"\x0b(.*?)\x1c\r?", re.S)
# File/batch envelopes: each message inside is sent on its own and acknowledged on its own.
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


@dataclass
class Ack:
    code: str  # MSA-1: AA, AE, AR (or CA/CE/CR)
    control_id: str  # MSA-2
    text: str  # MSA-3


def split_messages(data: bytes) -> list[bytes]:
    """The messages in a file: MLLP frames if framed, else segments grouped from each MSH.

    Segment separators may be CR, LF or CRLF in files; they are sent as CR (the standard).
    Bytes are never decoded, so the message's own character set (MSH-18) travels intact.
    """
    frames = _FRAME.findall(data)
    if frames:
        return frames
    segments = [s for s in re.split(rb"\r\n|\r|\n", data) if s.strip()]
    messages: list[list[bytes]] = []
    for seg in segments:
        if seg.startswith(b"MSH"):
            messages.append([seg])
        elif seg[:3] in _ENVELOPE:
            continue
        elif messages:
            messages[-1].append(seg)
        else:
            raise ValueError(f"segment before the first MSH: {seg[:20]!r}")
    return [b"\r".join(m) + b"\r" for m in messages]


def control_id(message: bytes) -> str:
    """MSH-10, for the report line (best effort)."""
    if len(message) < 4:
        return ""
    fields = message.split(b"\r", 1)[0].split(message[3:4])
    return fields[9].decode("latin-1") if len(fields) > 9 else ""


def parse_ack(raw: bytes) -> Ack:
    data = raw.strip(b"\x0b\x1c\r\n")
    if not data.startswith(b"MSH") or len(data) < 4:
        return Ack("??", "", f"not an HL7 ACK: {data[:40]!r}")
    sep = data[3:4]
    for seg in re.split(rb"\r\n|\r|\n", data):
        if seg.startswith(b"MSA"):
            f = [x.decode("utf-8", "replace") for x in seg.split(sep)]
            return Ack(f[1] if len(f) > 1 else "??", f[2] if len(f) > 2 else "", f[3] if len(f) > 3 else "")
    return Ack("??", "", "ACK without MSA segment")


async def send_files(files: list[Path], host: str, port: int, timeout_s: float = 10.0, raw: bool = False,
                     tls: ssl.SSLContext | None = None) -> int:
    """0 when every message got AA; 1 when any got something else; 2 when sending failed."""
    from radflow.infra.mllp_client import MllpClient, MllpError

    batches: list[tuple[Path, list[bytes]]] = []
    for path in files:
        data = path.read_bytes()
        try:
            messages = [data] if raw else split_messages(data)
        except ValueError as err:
            print(f"{path}: {err}", file=sys.stderr)
            return 2
        if not messages:
            print(f"{path}: no HL7 message found", file=sys.stderr)
            return 2
        batches.append((path, messages))

    total = sum(len(m) for _, m in batches)
    codes: Counter[str] = Counter()
    worst = 0
    with progress(total if total > 1 else 0, "send-hl7") as advance:
        for path, messages in batches:
            acks: list[bytes] = []
            try:
                async with MllpClient(host, port, timeout_s=timeout_s, tls=tls) as client:
                    for message in messages:
                        acks.append(await client.send(message))
                        advance(1)
            except (OSError, TimeoutError, MllpError) as err:
                _report(path, messages, acks, codes)
                print(f"{path}: sending to {host}:{port} failed: {err or type(err).__name__}", file=sys.stderr)
                return 2
            worst = max(worst, _report(path, messages, acks, codes))
    # The record when no bar is drawn (CI, pipes): one line for the whole run.
    print(f"sent {sum(codes.values())} of {total} message(s) from {len(batches)} file(s): "
          + (", ".join(f"{n} {code}" for code, n in sorted(codes.items())) or "no ACK"))
    return worst


def _report(path: Path, messages: list[bytes], acks: list[bytes], codes: Counter[str]) -> int:
    """Print one line per acknowledged message; 0 all AA, 1 any other answer."""
    worst = 0
    for n, (message, raw_ack) in enumerate(zip(messages, acks, strict=False), start=1):
        ack = parse_ack(raw_ack)
        codes[ack.code] += 1
        detail = f" {ack.text}" if ack.text else ""
        print(f"{path.name}#{n} {control_id(message) or '-'} -> {ack.code}{detail}")
        if ack.code != "AA":
            worst = 1
    return worst
