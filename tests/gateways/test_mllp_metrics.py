"""MLLP listener metrics over real sockets: frames refused before parsing (by fixed reason labels),
connections open and connections refused over the cap."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack
from radflow.gateways.mllp import MllpLimits, frame, serve_mllp

MSG = b"MSH|^~\\&|CPOE|H|RADFLOW|R|20240301||ADT^A08|1|P|2.5\rPID|1||M1"


async def _ack(payload: bytes) -> bytes:
    return build_ack(AckHeader.from_text(payload.decode("latin-1")), AckCode.AA).encode()


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _answer(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 10)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_refused_frames_and_connections_are_counted() -> None:
    server = await serve_mllp(_ack, "127.0.0.1", 0, limits=MllpLimits(max_frame=200, max_connections=1))
    port = server.sockets[0].getsockname()[1]
    before = {r: _value("radflow_mllp_refused_frames_total", reason=r) for r in ("missing_start", "oversized")}
    refused_before = _value("radflow_mllp_connections_refused_total")
    open_before = _value("radflow_mllp_connections")
    try:
        assert b"MSA|AR" in await _answer(port, MSG + b"\x1c\x0d")  # no start block
        assert b"MSA|AR" in await _answer(port, frame(MSG + b"\rNTE|" + b"x" * 400))  # over max_frame
        assert b"MSA|AA" in await _answer(port, frame(MSG))  # a good frame is not a refusal

        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # holds the one allowed connection
        writer.write(frame(MSG))
        await asyncio.wait_for(reader.readuntil(b"\x1c\x0d"), 10)
        assert _value("radflow_mllp_connections") == open_before + 1
        _, second = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if _value("radflow_mllp_connections_refused_total") > refused_before:
                break
            await asyncio.sleep(0.05)
        second.close()
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    assert _value("radflow_mllp_refused_frames_total", reason="missing_start") == before["missing_start"] + 1
    assert _value("radflow_mllp_refused_frames_total", reason="oversized") == before["oversized"] + 1
    assert _value("radflow_mllp_connections_refused_total") == refused_before + 1
    for _ in range(100):
        if _value("radflow_mllp_connections") == open_before:
            break
        await asyncio.sleep(0.05)
    assert _value("radflow_mllp_connections") == open_before
