"""The production commands as separate processes, payload encryption on: `radflow api` serves orders
that no `radflow worker` has seen yet from their read model, and advances once a worker runs."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from radflow.devstack import DevServer, free_port
from radflow.infra.mllp_client import send_messages
from radflow.service.codec import ensure_keys_file
from tests.radflow import procs
from tests.radflow.hl7_messages import orm_nw, oru
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def _ready(port: int) -> bool:
    resp = await procs.get(f"http://127.0.0.1:{port}/readyz")
    return resp is not None and resp.status_code == 200


async def test_api_process_reads_orders_no_worker_has_seen(dev_server: DevServer, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    acc, mrn, name = f"RP{tag}", f"MRP{tag}", f"Zqread{tag}"
    ensure_keys_file(tmp_path / "codec-keys")
    env = {
        "RADFLOW_TEMPORAL_ADDRESS": dev_server.address,
        "RADFLOW_TASK_QUEUE": f"tq-read-{tag.lower()}",
        "RADFLOW_DATA_DIR": str(tmp_path / "data"),
        "RADFLOW_API_AUTH": "none",
        "RADFLOW_HEALTH_HOST": "127.0.0.1",
        "RADFLOW_CODEC_KEYS_FILE": str(tmp_path / "codec-keys"),
        "RADFLOW_TEMPORAL_RPC_TIMEOUT_S": "2",
        "RADFLOW_LOG_LEVEL": "INFO",
    }
    mllp_port, api_port, mllp_health, worker_health = free_port(), free_port(), free_port(), free_port()
    mllp = procs.start("mllp", {**env, "RADFLOW_HEALTH_PORT": str(mllp_health)}, tmp_path / "mllp.log",
                       "--host", "127.0.0.1", "--port", str(mllp_port))
    api = procs.start("api", env, tmp_path / "api.log", "--host", "127.0.0.1", "--port", str(api_port))
    with procs.running(mllp, api):
        assert await eventually(lambda: _ready(mllp_health), bool, timeout_s=60)
        assert await eventually(lambda: _ready(api_port), bool, timeout_s=60)
        [ack] = await send_messages("127.0.0.1", mllp_port,
                                    [orm_nw(acc, mrn, f"NW-{tag}").replace("Testpatient^Beta", f"{name}^Quorra").encode()])
        assert b"MSA|AA" in ack
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=15) as http:
            read = await http.get(f"/orders/{acc}")
            assert read.status_code == 200, read.text
            body = read.json()
            assert body["status"] == "ORDERED" and body["patient"]["mrn"] == mrn and name in body["patient"]["name"]
            assert body["read"] == {**body["read"], "consistency": "eventual", "history_length": 0, "pending": True}
            assert (await http.get(f"/orders/{acc}", params={"consistency": "strong"})).status_code == 503

            worker = procs.start("worker", {**env, "RADFLOW_HEALTH_PORT": str(worker_health)}, tmp_path / "worker.log")
            with procs.running(worker):
                assert await eventually(lambda: _ready(worker_health), bool, timeout_s=60)
                [ack] = await send_messages("127.0.0.1", mllp_port, [oru(acc, mrn, "F", f"ORU-{tag}").encode()])
                assert b"MSA|AA" in ack
                after = (await http.get(f"/orders/{acc}")).json()  # acknowledged, so in the next read
                assert after["report_status"] == "final" and after["status"] in ("REPORTED", "COMPLETED"), after
                done = await eventually(lambda: http.get(f"/orders/{acc}"),
                                        lambda r: r.json()["status"] == "COMPLETED" and not r.json()["read"]["pending"],
                                        timeout_s=30)
                assert done.json()["read"]["history_length"] > 0
                exact = await http.get(f"/orders/{acc}", params={"consistency": "strong"})
                assert exact.status_code == 200 and exact.json()["status"] == "COMPLETED"
    for log in ("api.log", "mllp.log", "worker.log"):
        text = (tmp_path / log).read_text()
        assert "Traceback" not in text and name not in text and mrn not in text, log  # no PHI in INFO logs
