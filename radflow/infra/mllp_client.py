"""MLLP sender: one connection, one message at a time, each answered by an ACK frame.

Used by `radflow send-hl7`, the report delivery activity, tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence

START_BYTE = b"\x0b"
END_BYTES = b"\x1c\x0d"


class MllpError(Exception):
    """The peer closed, timed out or answered with something that is not an MLLP frame."""


class MllpClient:
    def __init__(self, host: str, port: int, *, timeout_s: float = 10.0, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.tls = tls  # a verifying client context (radflow.infra.tls): the server must name `host`
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> MllpClient:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.tls,
                                    ssl_handshake_timeout=self.timeout_s if self.tls else None),
            self.timeout_s,
        )
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def send(self, payload: bytes) -> bytes:
        """Send one message (without framing) and return the ACK payload (without framing)."""
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        self._writer.write(START_BYTE + payload + END_BYTES)
        await self._writer.drain()
        return await self.receive()

    async def receive(self) -> bytes:
        assert self._reader is not None
        try:
            data = await asyncio.wait_for(self._reader.readuntil(END_BYTES), self.timeout_s)
        except asyncio.IncompleteReadError as err:
            raise MllpError("connection closed before the ACK arrived") from err
        except asyncio.LimitOverrunError as err:
            raise MllpError("ACK frame too large") from err
        except TimeoutError as err:
            raise MllpError(f"no ACK within {self.timeout_s} s") from err
        start = data.find(START_BYTE)
        if start == -1:
            raise MllpError("response without MLLP start block")
        return data[start + 1 : -len(END_BYTES)]

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def __aenter__(self) -> MllpClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def send_messages(host: str, port: int, messages: Sequence[bytes], timeout_s: float = 10.0,
                        tls: ssl.SSLContext | None = None) -> list[bytes]:
    """Send messages in order over one connection; returns their ACK payloads."""
    async with MllpClient(host, port, timeout_s=timeout_s, tls=tls) as client:
        return [await client.send(m) for m in messages]
