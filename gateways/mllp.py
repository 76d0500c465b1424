"""MLLP listener: <VT> payload <FS><CR> frames over asyncio TCP, one handler call per frame.

Each connection is served by one task, so its messages are handled and answered in the
order they arrived; connections run concurrently. Bad framing never ends the listener or
the connection: bytes outside a frame are skipped, a frame that ends without its start
byte or grows past `max_frame` is answered with an AR built from its first bytes (so
the sender learns why instead of waiting for a timeout), and the reader resynchronises
on the next start byte.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.domain.hl7.parse import ErrorCode
from radflow.infra import metrics
from radflow.infra.tls import peer_subject

log = logging.getLogger("radflow.mllp")

START = 0x0B
END = 0x1C
CR = 0x0D
START_BYTE = b"\x0b"
END_BYTES = b"\x1c\x0d"
DEFAULT_MAX_FRAME = 1024 * 1024
_HEAD_KEPT = 4096  # enough of an oversized frame to read its MSH for the AR

Handler = Callable[[bytes], Awaitable[bytes]]
Rejecter = Callable[[bytes, str], bytes]


def frame(payload: bytes) -> bytes:
    return START_BYTE + payload + END_BYTES


def reject_frame(head: bytes, reason: str) -> bytes:
    """AR for bytes we could not hand to the handler (framing error, oversized frame)."""
    return fallback_ack(head, AckCode.AR, reason, ErrorCode.SEGMENT_SEQUENCE)


class FrameReader:
    """Incremental MLLP deframer: feed bytes, get complete frames and framing errors.

    Emits ("frame", payload) and ("error", head, reason) items. Lenient on the trailer:
    a frame ends at <FS>; the <CR> after it is consumed when it comes.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._in_frame = False
        self._oversized = False
        self._head = b""
        self._skip_cr = False
        self._junk = bytearray()  # bytes seen outside a frame (kept short)
        self.started = 0  # frames begun so far (the connection times each frame from its start)

    @property
    def in_frame(self) -> bool:
        """A frame has started and not ended yet."""
        return self._in_frame

    def pending_head(self) -> bytes:
        """The first bytes of the unfinished frame (to answer it when it never ends)."""
        return self._head if self._oversized else bytes(self._buf[:_HEAD_KEPT])

    def feed(self, data: bytes) -> list[tuple[str, bytes, str]]:
        out: list[tuple[str, bytes, str]] = []
        i, n = 0, len(data)
        # Next end / start byte at or after i, found once and reused while still ahead of i:
        # searching afresh for every byte of a run of control bytes would be quadratic.
        ends, starts = _Finder(data, b"\x1c"), _Finder(data, START_BYTE)
        while i < n:
            if self._skip_cr:
                self._skip_cr = False
                if data[i] == CR:
                    i += 1
                    continue
            if not self._in_frame:
                end = ends.at(i)
                start = starts.before(i, end if end != -1 else n)
                if end != -1 and start == -1:
                    # A frame end without its start byte: answer it if it looks like HL7.
                    self._junk += data[i:end][: _HEAD_KEPT]
                    if b"MSH" in self._junk:
                        out.append(("error", bytes(self._junk[:_HEAD_KEPT]), "MLLP framing error: missing start block (0x0B)"))
                    elif self._junk.strip():
                        log.warning("mllp: %d bytes outside a frame discarded", len(self._junk))
                    self._junk.clear()
                    self._skip_cr = True
                    i = end + 1
                    continue
                if start == -1:
                    if len(self._junk) < _HEAD_KEPT:
                        self._junk += data[i : i + _HEAD_KEPT]
                    break
                if start > i or self._junk:
                    if (self._junk + data[i:start]).strip():
                        log.warning("mllp: %d bytes before a start block discarded", len(self._junk) + start - i)
                    self._junk.clear()
                self._in_frame = True
                self._oversized = False
                self._buf.clear()
                self.started += 1
                i = start + 1
                continue
            # inside a frame: look for its end, or a new start (the previous frame was cut off)
            end = ends.at(i)
            stop = end if end != -1 else n
            restart = starts.before(i, stop)
            if restart != -1:
                self._add(data[i:restart])
                head = bytes(self._buf[:_HEAD_KEPT]) if not self._oversized else self._head
                if head:  # a start byte right after a start byte carried nothing to answer
                    out.append(("error", head, "MLLP framing error: frame interrupted by a new start block"))
                self._buf.clear()
                self._oversized = False
                self.started += 1
                i = restart + 1
                continue
            self._add(data[i:stop])
            if end == -1:
                break
            if self._oversized:
                out.append(("error", self._head, f"frame larger than {self.max_frame} bytes"))
            else:
                out.append(("frame", bytes(self._buf), ""))
            self._buf.clear()
            self._in_frame = False
            self._skip_cr = True
            i = end + 1
        return out

    def _add(self, chunk: bytes) -> None:
        if self._oversized:
            return
        self._buf += chunk
        if len(self._buf) > self.max_frame:
            self._oversized = True
            self._head = bytes(self._buf[:_HEAD_KEPT])
            self._buf.clear()


@dataclass(frozen=True)
class MllpLimits:
    """Per-listener resource limits (docs/limits.md; settings mllp_*).

    A connection that sends no complete frame for `idle_timeout_s` is closed; a frame
    must arrive whole within `frame_timeout_s` of its start byte (slow-loris senders),
    else it is answered AR and the connection closed; an ACK the peer does not read
    within `write_timeout_s` closes the connection. Connections beyond
    `max_connections` are closed as soon as they are accepted. On a TLS listener a
    connection must finish its handshake within `handshake_timeout_s` (it counts against
    `max_connections` meanwhile, so half-open handshakes cannot pile up).
    """

    max_frame: int = DEFAULT_MAX_FRAME
    max_connections: int = 100
    idle_timeout_s: float = 300.0
    frame_timeout_s: float = 30.0
    write_timeout_s: float = 30.0
    handshake_timeout_s: float = 10.0


async def serve_mllp(
    handler: Handler,
    host: str,
    port: int,
    *,
    max_frame: int | None = None,
    limits: MllpLimits = MllpLimits(),
    reject: Rejecter = reject_frame,
    read_size: int = 65536,
    tls: ssl.SSLContext | None = None,
) -> asyncio.Server:
    """Start listening; the caller owns the server (`close()` + `wait_closed()`).

    With `tls`, each connection is accepted as TCP (so the connection cap counts it) and then
    upgraded; one that does not complete the handshake in time, or speaks plain MLLP, is
    closed without an answer and without touching the others.
    """
    if max_frame is not None:
        limits = replace(limits, max_frame=max_frame)
    active = 0

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        peer = writer.get_extra_info("peername")
        if active >= limits.max_connections:
            log.warning("mllp %s: refused, %d connections open (limit mllp_max_connections)", peer, active)
            metrics.MLLP_CONNECTIONS_REFUSED.inc()
            writer.transport.abort()  # at once: no FIN handshake to wait for, nothing to answer yet
            return
        active += 1
        metrics.MLLP_CONNECTIONS.inc()
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if tls is not None and not await _handshake(writer, tls, limits, peer):
                return
            await _serve_connection(reader, writer, handler, reject, limits, read_size, peer)
        finally:
            active -= 1
            metrics.MLLP_CONNECTIONS.dec()

    return await asyncio.start_server(on_connection, host, port, limit=max(read_size, 65536))


async def _handshake(writer: asyncio.StreamWriter, tls: ssl.SSLContext, limits: MllpLimits, peer: object) -> bool:
    try:
        await writer.start_tls(tls, ssl_handshake_timeout=limits.handshake_timeout_s)
    except asyncio.CancelledError:
        raise
    except (OSError, TimeoutError, ssl.SSLError) as err:  # plain TCP, untrusted/no client cert, too slow
        log.warning("mllp %s: TLS handshake failed: %s", peer, str(err) or type(err).__name__)
        writer.transport.abort()
        return False
    subject = peer_subject(writer.get_extra_info("ssl_object"))
    if subject:
        log.info("mllp %s: TLS client certificate %s", peer, subject)
    return True


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler,
                            reject: Rejecter, limits: MllpLimits, read_size: int, peer: object) -> None:
    loop = asyncio.get_running_loop()
    frames = FrameReader(limits.max_frame)
    idle_deadline = loop.time() + limits.idle_timeout_s
    frame_deadline = 0.0
    timed = 0  # FrameReader.started value the frame deadline belongs to
    try:
        while True:
            in_frame = frames.in_frame
            try:
                async with asyncio.timeout_at(frame_deadline if in_frame else idle_deadline):
                    data = await reader.read(read_size)
            except TimeoutError:
                if in_frame:
                    reason = f"MLLP frame not completed within {limits.frame_timeout_s:g} s"
                    log.warning("mllp %s: %s; closing", peer, reason)
                    metrics.observe_refused_frame(reason)
                    writer.write(frame(reject(frames.pending_head(), reason)))
                    await _drain(writer, limits)
                else:
                    log.info("mllp %s: idle for %g s; closing", peer, limits.idle_timeout_s)
                break
            if not data:
                break
            items = frames.feed(data)
            for kind, payload, reason in items:
                if kind == "frame":
                    response = await _call(handler, payload, reject)
                else:
                    log.warning("mllp %s: %s", peer, reason)
                    metrics.observe_refused_frame(reason)
                    response = reject(payload, reason)
                if response:  # b"": the handler answers nothing (HL7 enhanced mode, MSH-15 NE/ER/SU)
                    writer.write(frame(response))
            await _drain(writer, limits)
            now = loop.time()
            if items:
                idle_deadline = now + limits.idle_timeout_s
            if frames.in_frame and frames.started != timed:
                timed = frames.started
                frame_deadline = now + limits.frame_timeout_s
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    except TimeoutError:
        log.warning("mllp %s: ACK not read within %g s; closing", peer, limits.write_timeout_s)
    except asyncio.CancelledError:
        raise
    except Exception:  # one broken connection must not take the listener down
        log.exception("mllp %s: connection failed", peer)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class _Finder:
    """Positions of one byte value in a chunk, each searched for at most once per chunk."""

    def __init__(self, data: bytes, byte: bytes) -> None:
        self.data, self.byte = data, byte
        self.next = -2  # position of the next occurrence found so far; -1 none left; -2 not searched

    def at(self, i: int) -> int:
        """The first occurrence at or after i, or -1."""
        if self.next == -2 or (self.next != -1 and self.next < i):
            self.next = self.data.find(self.byte, i)
        return self.next

    def before(self, i: int, stop: int) -> int:
        """The first occurrence in [i, stop), or -1 (searches no further than stop)."""
        if self.next == -1 or (self.next >= i and self.next != -2):
            return self.next if self.next != -1 and self.next < stop else -1
        found = self.data.find(self.byte, i, stop)
        # Not found before stop says nothing about what lies beyond it: remember hits only.
        if found != -1:
            self.next = found
        return found


async def _drain(writer: asyncio.StreamWriter, limits: MllpLimits) -> None:
    async with asyncio.timeout(limits.write_timeout_s):
        await writer.drain()


async def _call(handler: Handler, payload: bytes, reject: Rejecter) -> bytes:
    try:
        return await handler(payload)
    except asyncio.CancelledError:
        raise
    except Exception:
        # The handler should answer every message itself; if it cannot, the sender gets
        # an AE (retry later), never silence and never AA.
        log.exception("mllp handler failed")
        return fallback_ack(payload, AckCode.AE, "internal error", ErrorCode.INTERNAL_ERROR)


def fallback_ack(head: bytes, code: AckCode, reason: str, error: ErrorCode) -> bytes:
    """An ACK echoing what can be read of the MSH; if even that fails, one with an empty MSA-2,
    so a frame is never left unanswered (and the connection stays usable)."""
    try:
        header = AckHeader.from_text(head[:_HEAD_KEPT].decode("latin-1"))
        return build_ack(header, code, reason, error).encode("latin-1", errors="replace")
    except Exception:
        log.exception("mllp: could not read the header of a frame being answered %s", code.value)
        return build_ack(AckHeader(), code, reason, error).encode("latin-1", errors="replace")
