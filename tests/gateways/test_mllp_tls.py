"""MLLP over TLS on the real HL7 gateway (dev server + worker), with certificates made at test time.

A TLS client that trusts the CA gets its ACK after the order is durable; with client
certificates required, a client without one or with one from another CA is refused at the
handshake; a plain-TCP sender gets no ACK and neither it nor a silent connection holds up the
listener for anybody else.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from radflow.domain.definitions import OrderStatus
from radflow.gateways.mllp import MllpLimits, frame, serve_mllp
from radflow.infra.mllp_client import MllpClient, MllpError
from radflow.infra.settings import Settings
from radflow.infra.tls import make_client_context, server_context
from tests.gateways.hl7_support import Hl7Stack, ack_of, open_hl7_stack
from tests.tls_certs import Pki, make_pki

pytestmark = pytest.mark.integration

NW = "orm_o01_nw_v24.hl7"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_settings(pki: Pki, **extra: object) -> dict[str, object]:
    return dict(mllp_tls_cert=pki.server_cert, mllp_tls_key=pki.server_key, **extra)


@pytest.fixture
async def tls_stack(client: Client, task_queue: str, tmp_path: Path, pki: Pki) -> AsyncIterator[Hl7Stack]:
    async with open_hl7_stack(client, task_queue, tmp_path, **tls_settings(pki, mllp_tls_handshake_timeout_s=1.0)) as stack:
        yield stack


@pytest.fixture
async def mtls_stack(client: Client, task_queue: str, tmp_path: Path, pki: Pki) -> AsyncIterator[Hl7Stack]:
    overrides = tls_settings(pki, mllp_tls_client_ca=pki.ca, mllp_tls_require_client_cert=True)
    async with open_hl7_stack(client, task_queue, tmp_path, **overrides) as stack:
        yield stack


async def send_tls(stack: Hl7Stack, message: bytes, tls: ssl.SSLContext) -> str:
    async with MllpClient(stack.host, stack.port, timeout_s=10, tls=tls) as mllp:
        return ack_of(await mllp.send(message)).code


async def test_an_order_over_tls_is_acknowledged_once_durable(tls_stack: Hl7Stack, pki: Pki) -> None:
    stack = tls_stack
    code = await send_tls(stack, stack.msg(NW), make_client_context(pki.ca))
    assert code == "AA"
    state = await stack.state(stack.acc("ACC1002"))  # AA means the workflow exists: no waiting
    assert state.status == OrderStatus.SCHEDULED


async def test_a_client_that_does_not_trust_the_server_certificate_sends_nothing(tls_stack: Hl7Stack, pki: Pki) -> None:
    stack = tls_stack
    with pytest.raises(ssl.SSLCertVerificationError):
        await send_tls(stack, stack.msg(NW), make_client_context(pki.rogue_ca))
    assert await stack.count(f"AccessionNumber = '{stack.acc('ACC1002')}'", 1, timeout_s=1.0) == 0


async def test_plain_tcp_gets_no_ack_and_the_listener_serves_tls_clients_on(tls_stack: Hl7Stack, pki: Pki) -> None:
    stack = tls_stack
    # A sender still configured for plain MLLP: its frame is not a ClientHello, so the
    # handshake fails and the connection closes without a byte of answer.
    reader, writer = await asyncio.open_connection(stack.host, stack.port)
    writer.write(frame(stack.msg(NW)))
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer == b""
    # A connection that never starts its handshake holds nothing up and is closed at the timeout (1 s here).
    silent_reader, silent_writer = await asyncio.open_connection(stack.host, stack.port)
    started = time.monotonic()
    assert await send_tls(stack, stack.msg(NW), make_client_context(pki.ca)) == "AA"
    assert time.monotonic() - started < 1.0
    assert await asyncio.wait_for(silent_reader.read(), 5) == b""
    assert time.monotonic() - started >= 0.9
    silent_writer.close()


async def test_required_client_certificates(mtls_stack: Hl7Stack, pki: Pki) -> None:
    stack = mtls_stack
    nw = stack.msg(NW)
    # No client certificate, or one issued by a CA the gateway does not trust: no connection, no order.
    for cert, key in ((None, None), (pki.rogue_client_cert, pki.rogue_client_key)):
        with pytest.raises((ssl.SSLError, ConnectionError, MllpError)):
            await send_tls(stack, nw, make_client_context(pki.ca, cert, key))
    assert await stack.count(f"AccessionNumber = '{stack.acc('ACC1002')}'", 1, timeout_s=1.0) == 0
    # The modality's certificate from the trusted CA: accepted.
    assert await send_tls(stack, nw, make_client_context(pki.ca, pki.client_cert, pki.client_key)) == "AA"
    assert (await stack.state(stack.acc("ACC1002"))).status == OrderStatus.SCHEDULED


async def test_send_hl7_cli_over_tls(tls_stack: Hl7Stack, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from radflow.cli import main

    path = tmp_path / "order.hl7"
    path.write_bytes(tls_stack.msg(NW))
    base = ["send-hl7", "--host", "localhost", "--port", str(tls_stack.port), str(path)]
    assert await asyncio.to_thread(main, [*base, "--tls-ca", str(pki.ca)]) == 0
    assert "-> AA" in capsys.readouterr().out
    # Without --tls the gateway answers nothing: "sending failed", exit code 2.
    assert await asyncio.to_thread(main, [*base, "--timeout", "3"]) == 2
    assert "sending to localhost" in capsys.readouterr().err


async def test_the_connection_cap_counts_handshakes_and_the_idle_timeout_holds_over_tls(pki: Pki) -> None:
    async def echo(payload: bytes) -> bytes:
        return b"ECHO:" + payload

    tls = server_context(Settings(_env_file=None, **tls_settings(pki)), "mllp")  # type: ignore[arg-type]
    limits = MllpLimits(max_connections=1, handshake_timeout_s=1.0, idle_timeout_s=0.5)
    server = await serve_mllp(echo, "127.0.0.1", 0, limits=limits, tls=tls)
    port = server.sockets[0].getsockname()[1]
    client_tls = make_client_context(pki.ca)
    try:
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)  # never says hello
        await asyncio.sleep(0.2)
        # The only slot is taken by a connection still in its handshake: the next one is closed at once.
        with pytest.raises((ssl.SSLError, ConnectionError, MllpError)):
            async with MllpClient("127.0.0.1", port, timeout_s=0.8, tls=client_tls) as mllp:
                await mllp.send(b"refused")
        assert await asyncio.wait_for(silent_reader.read(), 5) == b""  # handshake deadline: the slot is free again
        silent_writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
        writer.write(frame(b"m1"))
        assert await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5) == frame(b"ECHO:m1")
        idle_from = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed when idle, as on plain MLLP
        assert time.monotonic() - idle_from >= 0.4
        writer.close()
    finally:
        server.close()


async def test_radflow_mllp_and_send_hl7_as_processes_over_mutual_tls(dev_server, pki: Pki, tmp_path: Path) -> None:  # noqa: ANN001
    """What operators run: `radflow mllp` configured by RADFLOW_MLLP_TLS_*, `radflow send-hl7 --tls-*` as the sender."""
    import os
    import sys
    import uuid

    from radflow.devstack import free_port
    from tests.gateways.hl7_support import fixture

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADFLOW_")} | {
        "RADFLOW_TEMPORAL_ADDRESS": dev_server.address,
        "RADFLOW_TASK_QUEUE": f"tq-mllp-tls-{uuid.uuid4().hex[:8]}",  # no worker needed: AA follows the durable start
        "RADFLOW_DATA_DIR": str(tmp_path),
        "RADFLOW_MLLP_TLS_CERT": str(pki.server_cert),
        "RADFLOW_MLLP_TLS_KEY": str(pki.server_key),
        "RADFLOW_MLLP_TLS_CLIENT_CA": str(pki.ca),
        "RADFLOW_MLLP_TLS_REQUIRE_CLIENT_CERT": "true",
    }
    gateway = await asyncio.create_subprocess_exec(sys.executable, "-m", "radflow", "mllp", "--host", "127.0.0.1", "--port",
                                                   str(port), cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        banner = b""
        while b"Press Ctrl-C" not in banner:
            line = await asyncio.wait_for(gateway.stdout.readline(), 30)  # type: ignore[union-attr]
            assert line, banner.decode(errors="replace")
            banner += line
        assert f"127.0.0.1:{port}  (TLS)".encode() in banner, banner
        message = tmp_path / "nw.hl7"
        message.write_bytes(fixture(NW, uuid.uuid4().hex[:6].upper()))

        async def send(*tls: str) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "radflow", "send-hl7", "--host", "127.0.0.1", "--port", str(port), "--timeout", "5",
                *tls, str(message), cwd=tmp_path, env={k: v for k, v in env.items() if "MLLP_TLS" not in k},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            return proc.returncode or 0, out.decode(errors="replace")

        code, out = await send("--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key))
        assert code == 0 and "-> AA" in out, out
        code, out = await send("--tls-ca", str(pki.ca))  # no client certificate
        assert code == 2 and "-> AA" not in out, out
    finally:
        gateway.send_signal(2)
        await asyncio.wait_for(gateway.wait(), 30)
