"""DICOM TLS on `radflow dicom` as operators run it (its own process, RADFLOW_* environment), with
DCMTK's findscu/storescu/echoscu as the peers and certificates generated at test time.

Client certificates are required: a modality with the site CA's certificate queries the
worklist and stores images; anonymous TLS, a certificate from another CA and plain DICOM are
refused at the connection and do not disturb the listener; a connection that never starts
its handshake is closed at the handshake timeout while others are served meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from radflow.devstack import DevServer, free_port
from radflow.infra.tls import make_client_context
from tests.dicom_peers import closed_by_peer
from tests.dicom_synth import SyntheticStudy
from tests.gateways.dicom.dcmtk import ECHOSCU, findscu, require_dcmtk, run
from tests.gateways.dicom.mpps_scu import MppsScu, completed
from tests.radflow.test_dicom_command_limits import ROOT, _until_listening, fill_worklist
from tests.tls_certs import Pki, make_pki

pytestmark = pytest.mark.integration

STORESCU = "/usr/bin/storescu"
HANDSHAKE_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_gateway(dev_server: DevServer, pki: Pki, tmp_path: Path) -> AsyncIterator[tuple[int, list[str]]]:
    require_dcmtk()
    fill_worklist(tmp_path / "worklist.db", 3)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADFLOW_")} | {
        "RADFLOW_DICOM_TLS_CERT": str(pki.server_cert),
        "RADFLOW_DICOM_TLS_KEY": str(pki.server_key),
        "RADFLOW_DICOM_TLS_CLIENT_CA": str(pki.ca),
        "RADFLOW_DICOM_TLS_REQUIRE_CLIENT_CERT": "true",
        "RADFLOW_DICOM_TLS_HANDSHAKE_TIMEOUT_S": str(HANDSHAKE_TIMEOUT_S),
        "RADFLOW_DICOM_ALLOWED_AETS": '["MODALITY1"]',
        "RADFLOW_DICOM_SPOOL_FSYNC": "false",
        "RADFLOW_LOG_LEVEL": "INFO",
    }
    cmd = [sys.executable, "-m", "radflow", "dicom", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(tmp_path), "--temporal-address", dev_server.address]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []

    async def collect() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            lines.append(line.decode(errors="replace"))

    reader = asyncio.create_task(collect())
    try:
        await _until_listening(port, proc)
        yield port, lines
    finally:
        proc.send_signal(2)
        await asyncio.wait_for(proc.wait(), 30)
        await reader


def tls_args(key: Path, cert: Path, ca: Path) -> list[str]:
    return ["+tls", str(key), str(cert), "+cf", str(ca)]


async def echo(port: int, *tls: str) -> tuple[int, str]:
    return await run(ECHOSCU, "-v", "-aet", "MODALITY1", "-aec", "RADFLOW", "-to", "5", *tls, "127.0.0.1", str(port), timeout_s=30)


async def test_dcmtk_over_tls_with_client_certificates(tls_gateway: tuple[int, list[str]], pki: Pki, tmp_path: Path) -> None:
    port, lines = tls_gateway
    modality = tls_args(pki.client_key, pki.client_cert, pki.ca)
    found = await findscu(port, ["ScheduledProcedureStepSequence[0].Modality=CT", "PatientName", "AccessionNumber"],
                          extra=modality)
    assert found.returncode == 0, found.output
    assert sorted(str(r.AccessionNumber) for r in found.responses) == ["CL00000", "CL00001", "CL00002"]

    files = SyntheticStudy("ACCTLS1", series=[("CT", 2)], size=32).write(tmp_path / "study")
    code, output = await run(STORESCU, "-v", "-aet", "MODALITY1", "-aec", "RADFLOW", *modality, "127.0.0.1", str(port),
                             *map(str, files), timeout_s=60)
    assert code == 0 and "Store Response (Success)" in output, output
    # MPPS on the same TLS port (DCMTK has no MPPS SCU: pynetdicom with the modality's certificate).
    scu = MppsScu(port, tls=make_client_context(pki.ca, pki.client_cert, pki.client_key))
    answer = await asyncio.to_thread(scu.set, completed({}), generate_uid())
    assert answer.status == 0x0112, answer  # the MPPS handler's answer (no such instance), over TLS
    assert any("TLS client certificate modality-ct1" in line for line in lines), "".join(lines)
    assert any("TLS; " in line for line in lines), "".join(lines)  # the banner says so


async def test_peers_without_a_trusted_certificate_and_plain_dicom_are_refused(tls_gateway: tuple[int, list[str]],
                                                                               pki: Pki) -> None:
    port, lines = tls_gateway
    failures_before = sum("DICOM TLS handshake failed" in line for line in lines)  # e.g. the startup probe
    refused = {
        "plain DICOM": await echo(port),
        "anonymous TLS": await echo(port, "+tla", "+cf", str(pki.ca)),
        "another CA's certificate": await echo(port, *tls_args(pki.rogue_client_key, pki.rogue_client_cert, pki.ca)),
        "untrusted server": await echo(port, *tls_args(pki.client_key, pki.client_cert, pki.rogue_ca)),
    }
    for case, (code, output) in refused.items():
        assert code != 0 and "Association Accepted" not in output, (case, output)
    # The gateway's side of it (the untrusted-server case ends on the client side, before our check).
    assert sum("DICOM TLS handshake failed" in line for line in lines) - failures_before >= 3, "".join(lines)
    # The listener goes on serving.
    code, output = await echo(port, *tls_args(pki.client_key, pki.client_cert, pki.ca))
    assert code == 0 and "Association Accepted" in output, output


async def test_a_silent_connection_does_not_stall_the_listener(tls_gateway: tuple[int, list[str]], pki: Pki) -> None:
    port, _ = tls_gateway
    with socket.create_connection(("127.0.0.1", port)) as silent:
        started = time.monotonic()
        # pynetdicom's single accept thread would block in the handshake of the silent peer
        # if it did the handshake itself; here the modality is served meanwhile.
        code, output = await echo(port, *tls_args(pki.client_key, pki.client_cert, pki.ca))
        assert code == 0 and "Association Accepted" in output, output
        assert await asyncio.to_thread(closed_by_peer, silent, HANDSHAKE_TIMEOUT_S + 5)
        assert time.monotonic() - started >= HANDSHAKE_TIMEOUT_S * 0.9
