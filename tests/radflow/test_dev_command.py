"""Smoke test of `radflow dev` as a user runs it: a real subprocess, real ports, Ctrl-C (SIGINT)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx

from radflow.devstack import free_port
from radflow.infra.mllp_client import send_messages
from tests.radflow.hl7_messages import orm_nw

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return not re.search(r"^State:\s+Z", status, re.M)  # a zombie has exited


async def _wait_healthy(url: str, proc: asyncio.subprocess.Process, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            assert proc.returncode is None, "radflow dev exited during startup"
            try:
                if (await http.get(url, timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} not healthy after {timeout_s}s")


async def test_radflow_dev_serves_an_order_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("temporal", "ui", "mllp", "api")}
    cmd = [sys.executable, "-m", "radflow", "dev", "--data-dir", str(tmp_path / "data"),
           "--temporal-port", str(ports["temporal"]), "--ui-port", str(ports["ui"]),
           "--mllp-port", str(ports["mllp"]), "--api-port", str(ports["api"])]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=os.environ | {"RADFLOW_LOG_LEVEL": "INFO"})
    output: list[str] = []

    async def read_output() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read_output())
    api = f"http://127.0.0.1:{ports['api']}"
    try:
        await _wait_healthy(f"{api}/healthz", proc)
        text = "".join(output)
        assert f"127.0.0.1:{ports['mllp']}" in text and f"{api}/docs" in text
        assert f"http://127.0.0.1:{ports['ui']}/namespaces/default/workflows" in text
        assert "WARNING: no report destination is configured" in text
        assert "NOTICE: the API on 127.0.0.1 is OPEN" in text  # open is allowed on loopback, and said
        # The umask makes the dev server's Temporal database owner-only too (it holds every payload).
        assert (tmp_path / "data" / "temporal.db").stat().st_mode & 0o077 == 0
        dev_pid = int(re.search(r"dev server pid\s+(\d+)", text).group(1))  # type: ignore[union-attr]
        assert _alive(dev_pid)

        acc = "D" + uuid.uuid4().hex[:8].upper()
        [ack] = await send_messages("127.0.0.1", ports["mllp"], [orm_nw(acc, "MDEV1", f"NW-{acc}").encode()])
        assert b"MSA|AA" in ack
        async with httpx.AsyncClient(base_url=api) as http:
            order = await http.get(f"/orders/{acc}")
            assert order.status_code == 200 and order.json()["patient"]["mrn"] == "MDEV1"
            assert (await http.get("/docs")).status_code == 200
            ui = await http.get(f"http://127.0.0.1:{ports['ui']}/")
            assert ui.status_code == 200
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=45)
        except TimeoutError:
            proc.kill()
            raise
        await reader

    log = "".join(output)
    assert code == 0, log[-3000:]
    assert "stopped" in log and "component=temporal-dev-server" in log
    assert not _alive(dev_pid), "the Temporal dev server outlived radflow dev"
    assert (tmp_path / "data" / "temporal.db").exists()
