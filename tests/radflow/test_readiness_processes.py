"""/livez and /readyz of the production commands as separate processes: 503 with the reason before
Temporal is up, 200 once connected, 503 again when Temporal goes away."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from radflow.devstack import DevServer, free_port
from tests.radflow import procs
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def _readyz(port: int):  # noqa: ANN202
    return await procs.get(f"http://127.0.0.1:{port}/readyz")


def _answered(resp) -> bool:  # noqa: ANN001
    return resp is not None


async def test_ready_only_while_connected_to_temporal(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    temporal_port = free_port()
    health = {"worker": free_port(), "mllp": free_port(), "dicom": free_port(), "api": free_port()}
    env = {
        "RADFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",  # nothing listens there yet
        "RADFLOW_TASK_QUEUE": f"tq-ready-{tag}",
        "RADFLOW_DATA_DIR": str(tmp_path / "data"),
        "RADFLOW_API_AUTH": "none",
        "RADFLOW_HEALTH_HOST": "127.0.0.1",
    }
    started = [
        procs.start("worker", {**env, "RADFLOW_HEALTH_PORT": str(health["worker"])}, tmp_path / "worker.log"),
        procs.start("mllp", {**env, "RADFLOW_HEALTH_PORT": str(health["mllp"])}, tmp_path / "mllp.log",
                    "--host", "127.0.0.1", "--port", str(free_port())),
        procs.start("dicom", {**env, "RADFLOW_HEALTH_PORT": str(health["dicom"])}, tmp_path / "dicom.log",
                    "--host", "127.0.0.1", "--port", str(free_port())),
        procs.start("api", env, tmp_path / "api.log", "--host", "127.0.0.1", "--port", str(health["api"])),
    ]
    server = DevServer(db_file=None, port=temporal_port, ui_port=None, log_file=tmp_path / "temporal.log")
    with procs.running(*started):
        for role, port in health.items():
            resp = await eventually(lambda port=port: _readyz(port), _answered, timeout_s=60)
            assert resp.status_code == 503, (role, resp.text)
            assert "temporal: not connected to Temporal yet" in resp.text, (role, resp.text)
            live = await procs.get(f"http://127.0.0.1:{port}/livez")
            assert live is not None and live.status_code == 200, role
        for proc in started:
            assert proc.poll() is None, "a process gave up instead of waiting for Temporal"

        await server.start()
        try:
            for role, port in health.items():
                resp = await eventually(lambda port=port: _readyz(port), lambda r: r is not None and r.status_code == 200,
                                        timeout_s=60)
                assert resp.text == "ready\n", role
        finally:
            server.stop()

        for role, port in health.items():
            resp = await eventually(lambda port=port: _readyz(port), lambda r: r is not None and r.status_code == 503,
                                    timeout_s=60)
            assert "temporal: Temporal unreachable" in resp.text, (role, resp.text)
