"""MLLP resource limits over real sockets (issue 8 item 3): idle and per-frame read timeouts
(slow-loris), the connection cap, and a frame reader that stays linear on hostile bytes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack, read_ack
from radflow.gateways.mllp import FrameReader, MllpLimits, frame, serve_mllp
from radflow.devstack import DevServer, free_port

MSG = b"MSH|^~\\&|CPOE|H|RADFLOW|R|20240301||ADT^A08|{id}|P|2.5\rPID|1||M1"


async def _ack(payload: bytes) -> bytes:
    return build_ack(AckHeader.from_text(payload.decode("latin-1")), AckCode.AA).encode()


@contextlib.asynccontextmanager
async def _server(**limits: object) -> AsyncIterator[int]:
    server = await serve_mllp(_ack, "127.0.0.1", 0, limits=MllpLimits(**limits))  # type: ignore[arg-type]
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed (fails if it stays open longer)."""
    out = b""
    async with asyncio.timeout(seconds):
        try:
            while chunk := await reader.read(65536):
                out += chunk
        except ConnectionResetError:  # a peer still writing after the server closed gets a reset
            pass
    return out


async def test_idle_connection_is_closed() -> None:
    async with _server(idle_timeout_s=0.3) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        assert await _closed_within(reader, 5) == b""
        assert time.monotonic() - started >= 0.25
        writer.close()


async def test_trickled_junk_does_not_keep_a_connection_open() -> None:
    async with _server(idle_timeout_s=0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for _ in range(100):
                    writer.write(b"x")
                    await writer.drain()
                    await asyncio.sleep(0.05)

        task = asyncio.create_task(trickle())
        await _closed_within(reader, 4)
        task.cancel()
        writer.close()


async def test_frames_keep_a_connection_open_past_the_idle_timeout() -> None:
    async with _server(idle_timeout_s=0.4) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(5):  # 5 x 0.25 s > 0.4 s
            writer.write(frame(MSG.replace(b"{id}", b"K%d" % i)))
            chunk = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
            assert read_ack(chunk[1:-2].decode()).control_id == f"K{i}"  # type: ignore[union-attr]
            await asyncio.sleep(0.25)
        writer.close()


async def test_slow_loris_frame_is_answered_ar_then_closed() -> None:
    async with _server(frame_timeout_s=0.5, idle_timeout_s=30) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = frame(MSG.replace(b"{id}", b"SLOW1"))
        started = time.monotonic()

        async def one_byte_at_a_time() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in payload[:-2]:  # never the end bytes
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.02)

        task = asyncio.create_task(one_byte_at_a_time())
        answer = await _closed_within(reader, 10)
        task.cancel()
        assert time.monotonic() - started < 8  # 0.5 s, plus a loaded machine; the trickle alone would take 1.3 s
        ack = read_ack(answer[1:-2].decode())
        assert ack is not None and ack.code == "AR" and "not completed within 0.5 s" in ack.text
        writer.close()


async def test_connections_over_the_cap_are_closed_promptly_and_a_slot_frees_up() -> None:
    async with _server(max_connections=3) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.1)  # the server has accepted all three
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            writer.write(frame(MSG.replace(b"{id}", b"OVER")))
            await _closed_within(reader, 2)
        assert time.monotonic() - started < 2
        # The held connections are still served; closing one lets a new one in.
        r0, w0 = held[0]
        w0.write(frame(MSG.replace(b"{id}", b"HELD")))
        assert b"MSA|AA|HELD" in await asyncio.wait_for(r0.readuntil(b"\x1c\r"), 5)
        w0.close()
        await asyncio.sleep(0.1)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(frame(MSG.replace(b"{id}", b"NEW")))
        assert b"MSA|AA|NEW" in await asyncio.wait_for(r.readuntil(b"\x1c\r"), 5)
        for _, wr in [*held[1:], (r, w)]:
            wr.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("byte", [b"\x1c", b"\x0b", b"\x0b\x1c", b"\x0bMSH"])
def test_frame_reader_is_linear_on_runs_of_control_bytes(byte: bytes) -> None:
    # Before: each end byte searched the whole rest of the chunk for a start byte (quadratic).
    reader = FrameReader(max_frame=1024)
    started = time.monotonic()
    reader.feed(byte * (1024 * 1024))
    assert time.monotonic() - started < 20  # ~1-3 s under load; quadratic took minutes


async def test_the_mllp_command_applies_the_limits_from_its_settings(dev_server: DevServer, tmp_path: Path) -> None:
    """`radflow mllp` (the production command, its own process) with RADFLOW_MLLP_* settings."""
    port = free_port()
    env = dict(os.environ, RADFLOW_TEMPORAL_ADDRESS=dev_server.address, RADFLOW_MLLP_MAX_CONNECTIONS="1",
               RADFLOW_MLLP_IDLE_TIMEOUT_S="0.5", RADFLOW_DATA_DIR=str(tmp_path), RADFLOW_LOG_LEVEL="INFO")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "radflow", "mllp", "--host", "127.0.0.1",
                                                "--port", str(port), env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                assert time.monotonic() < deadline, "radflow mllp did not start listening"
                await asyncio.sleep(0.2)
        await asyncio.sleep(0.1)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert await _closed_within(r2, 2) == b""  # over the cap of 1
        w2.close()
        assert await _closed_within(reader, 5) == b""  # idle for 0.5 s
        writer.close()
    finally:
        proc.terminate()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
