"""`radflow api` over HTTPS, as its own process with settings from the environment: certificates
made at test time, an encrypted key whose password comes from RADFLOW_TLS_KEY_PASSWORD, client
certificates required. Requests go through httpx trusting only the test CA."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from radflow.devstack import DevServer, free_port
from radflow.infra.tls import make_client_context
from tests.tls_certs import Pki, make_pki

pytestmark = pytest.mark.integration

TOKEN = "https-reader-secret-0123456789"
PASSWORD = "key password 42"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), server_key_password=PASSWORD.encode())


def clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RADFLOW_") and not k.startswith("SSL_CERT")} | extra


@pytest.fixture
async def https_api(request: pytest.FixtureRequest, dev_server: DevServer, pki: Pki, tmp_path: Path
                    ) -> AsyncIterator[tuple[int, list[str]]]:
    port = free_port()
    env = clean_env(
        RADFLOW_TEMPORAL_ADDRESS=dev_server.address,
        RADFLOW_API_KEYS=f"desk:reader:{TOKEN}",
        RADFLOW_API_TLS_CERT=str(pki.server_cert),
        RADFLOW_API_TLS_KEY=str(pki.server_key),
        RADFLOW_TLS_KEY_PASSWORD=PASSWORD,
        RADFLOW_DATA_DIR=str(tmp_path),
    )
    if getattr(request, "param", "mtls") == "mtls":
        env |= {"RADFLOW_API_TLS_CLIENT_CA": str(pki.ca), "RADFLOW_API_TLS_REQUIRE_CLIENT_CERT": "true"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "radflow", "api", "--host", "127.0.0.1", "--port",
                                                str(port), cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []

    async def collect() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            lines.append(line.decode(errors="replace"))

    reader = asyncio.create_task(collect())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not any("Press Ctrl-C" in line for line in lines):
            assert proc.returncode is None, "".join(lines)
            assert asyncio.get_running_loop().time() < deadline, "".join(lines)
            await asyncio.sleep(0.05)
        yield port, lines
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await reader


async def get(port: int, tls: ssl.SSLContext, scheme: str = "https") -> httpx.Response:
    async with httpx.AsyncClient(verify=tls, timeout=10) as http:
        return await http.get(f"{scheme}://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {TOKEN}"})


async def test_https_with_client_certificates(https_api: tuple[int, list[str]], pki: Pki) -> None:
    port, lines = https_api
    assert any(f"https://127.0.0.1:{port}" in line for line in lines), "".join(lines)
    ok = await get(port, make_client_context(pki.ca, pki.client_cert, pki.client_key))
    assert ok.status_code == 200 and ok.json()["temporal"] == "ok"
    assert ok.http_version == "HTTP/1.1"
    # No client certificate, one from another CA, a client that does not trust the server, plain HTTP: no answer at all.
    for tls in (make_client_context(pki.ca), make_client_context(pki.ca, pki.rogue_client_cert, pki.rogue_client_key),
                make_client_context(pki.rogue_ca, pki.client_cert, pki.client_key)):
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await get(port, tls)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError)):
        await get(port, make_client_context(pki.ca), scheme="http")
    # The listener is still serving after all that.
    assert (await get(port, make_client_context(pki.ca, pki.client_cert, pki.client_key))).status_code == 200
    assert PASSWORD not in "".join(lines)


@pytest.mark.parametrize("https_api", ["server-only"], indirect=True)
async def test_radflow_orders_over_https_trusts_the_ca_from_ssl_cert_file(https_api: tuple[int, list[str]], pki: Pki,
                                                                         tmp_path: Path) -> None:
    port, _ = https_api

    async def orders(**env: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "radflow", "orders", "--api", f"https://localhost:{port}", "show", "ACCNOSUCH",
            cwd=tmp_path, env=clean_env(RADFLOW_API_TOKEN=TOKEN, **env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(errors="replace")

    trusted = await orders(SSL_CERT_FILE=str(pki.ca))
    assert trusted[0] == 1 and "error 404" in trusted[1], trusted[1]  # reached the API over HTTPS: no such order
    untrusted = await orders()
    assert untrusted[0] != 0 and "error 404" not in untrusted[1] and "CERTIFICATE_VERIFY_FAILED" in untrusted[1], untrusted[1]
