"""MLLP framing over real loopback TCP (gateways/mllp.py, radflow/infra/mllp_client.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from radflow.gateways.mllp import FrameReader, frame, serve_mllp
from radflow.infra.mllp_client import MllpClient, MllpError, send_messages

MSG = b"MSH|^~\\&|A|B|C|D|2024||ADT^A08|CTRL1|P|2.5\rPID|1||M1"


async def echo(payload: bytes) -> bytes:
    if payload.startswith(b"BOOM"):
        raise RuntimeError("handler bug")
    if payload.startswith(b"SLOW"):
        await asyncio.sleep(0.05)
    return b"ECHO:" + payload


@pytest.fixture
async def listener() -> AsyncIterator[tuple[str, int]]:
    server = await serve_mllp(echo, "127.0.0.1", 0, max_frame=1000)
    host, port = server.sockets[0].getsockname()[:2]
    yield host, port
    server.close()
    await server.wait_closed()


async def _raw_exchange(addr: tuple[str, int], data: bytes, expected_frames: int) -> list[bytes]:
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(data)
    await writer.drain()
    out = []
    for _ in range(expected_frames):
        chunk = await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 5)
        assert chunk[:1] == b"\x0b"
        out.append(chunk[1:-2])
    writer.close()
    return out


# ------------------------------------------------------------------ the deframer alone
def test_frame_reader_split_anywhere() -> None:
    data = frame(b"one") + frame(b"two")
    for cut in range(len(data) + 1):
        reader = FrameReader()
        items = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert [(k, p) for k, p, _ in items] == [("frame", b"one"), ("frame", b"two")]


def test_frame_reader_byte_by_byte() -> None:
    reader = FrameReader()
    items = []
    for b in b"junk" + frame(b"abc") + b"\r\n" + frame(b"def"):
        items += reader.feed(bytes([b]))
    assert [(k, p) for k, p, _ in items] == [("frame", b"abc"), ("frame", b"def")]


def test_frame_reader_trailer_without_cr() -> None:
    reader = FrameReader()
    items = reader.feed(b"\x0bone\x1c\x0btwo\x1c\r")
    assert [p for _, p, _ in items] == [b"one", b"two"]


def test_frame_reader_errors() -> None:
    reader = FrameReader(max_frame=10)
    items = reader.feed(MSG + b"\x1c\r" + b"\x0b" + b"x" * 50 + b"\x1c\r" + b"\x0bpartial\x0bwhole\x1c\r" + b"noise\x1c\r")
    kinds = [(k, p[:3], r.split(":")[0]) for k, p, r in items]
    assert kinds == [
        ("error", b"MSH", "MLLP framing error"),
        ("error", b"xxx", "frame larger than 10 bytes"),
        ("error", b"par", "MLLP framing error"),
        ("frame", b"who", ""),
    ]


# ------------------------------------------------------------------ over TCP
async def test_round_trip_with_client(listener: tuple[str, int]) -> None:
    acks = await send_messages(*listener, [b"m1", b"m2", MSG])
    assert acks == [b"ECHO:m1", b"ECHO:m2", b"ECHO:" + MSG]


async def test_pipelined_frames_are_answered_in_order(listener: tuple[str, int]) -> None:
    data = frame(b"SLOW-1") + frame(b"fast-2") + frame(b"SLOW-3")
    assert await _raw_exchange(listener, data, 3) == [b"ECHO:SLOW-1", b"ECHO:fast-2", b"ECHO:SLOW-3"]


@pytest.mark.parametrize(
    ("data", "first"),
    [
        (b"garbage before\r\n" + frame(b"ok"), b"ECHO:ok"),  # bytes before the start block are skipped
        (b"\x1c\r" + frame(b"ok"), b"ECHO:ok"),  # stray end block
        (b"\x0bcut off" + frame(b"ok"), b"MSH"),  # AR for the interrupted frame first
    ],
)
async def test_bad_framing_then_good_message(listener: tuple[str, int], data: bytes, first: bytes) -> None:
    n = 2 if first == b"MSH" else 1
    got = await _raw_exchange(listener, data, n)
    assert got[0].startswith(first)
    assert got[-1] == b"ECHO:ok"


async def test_missing_start_block_is_answered_ar(listener: tuple[str, int]) -> None:
    ar, ok = await _raw_exchange(listener, MSG + b"\x1c\r" + frame(b"ok"), 2)
    assert b"\rMSA|AR|CTRL1|MLLP framing error: missing start block" in ar
    assert ok == b"ECHO:ok"


async def test_oversized_frame_is_rejected_and_the_connection_survives(listener: tuple[str, int]) -> None:
    big = MSG + b"\rOBX|" + b"x" * 5000
    async with MllpClient(*listener, timeout_s=5) as client:
        ar = await client.send(big)
        assert b"MSA|AR|CTRL1|frame larger than 1000 bytes" in ar
        assert await client.send(b"after") == b"ECHO:after"


async def test_handler_failure_answers_ae_and_keeps_the_connection(listener: tuple[str, int]) -> None:
    async with MllpClient(*listener, timeout_s=5) as client:
        ae = await client.send(b"BOOM\r" + MSG)
        assert b"MSA|AE|CTRL1" in ae
        assert await client.send(b"next") == b"ECHO:next"


async def test_many_concurrent_connections_keep_their_own_order(listener: tuple[str, int]) -> None:
    async def one(i: int) -> list[bytes]:
        return await send_messages(*listener, [f"c{i}-m{j}".encode() for j in range(20)])

    results = await asyncio.gather(*(one(i) for i in range(25)))
    for i, acks in enumerate(results):
        assert acks == [f"ECHO:c{i}-m{j}".encode() for j in range(20)]


async def test_client_disconnect_mid_frame_does_not_hurt_the_listener(listener: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*listener)
    writer.write(b"\x0bhalf a frame")
    await writer.drain()
    writer.close()
    assert await send_messages(*listener, [b"still here"]) == [b"ECHO:still here"]


async def test_client_timeout_and_refused() -> None:
    async def silent(payload: bytes) -> bytes:
        await asyncio.sleep(10)
        return b""

    server = await serve_mllp(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(MllpError):
            await send_messages("127.0.0.1", port, [b"x"], timeout_s=0.2)
    finally:
        server.close()
    with pytest.raises(OSError):
        await send_messages("127.0.0.1", port, [b"x"], timeout_s=1)


async def test_accepted_sockets_have_nagle_off(listener: tuple[str, int]) -> None:
    """Every accepted connection has TCP_NODELAY, read back from the server-side socket.

    (asyncio's selector transports also set it; serve_mllp sets it explicitly so a change of
    event loop or transport cannot bring Nagle's ~40-200 ms back.)"""
    import gc
    import socket

    async with MllpClient(*listener) as client:
        await client.send(MSG)
        local = client._writer.get_extra_info("sockname")[:2]  # our end = the accepted socket's peer
        accepted = [s for s in gc.get_objects()
                    if isinstance(s, socket.socket) and s.fileno() != -1 and s.type == socket.SOCK_STREAM
                    and _peer(s) == local]
        assert len(accepted) == 1
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def _peer(sock) -> tuple | None:
    try:
        return sock.getpeername()[:2]
    except OSError:
        return None
