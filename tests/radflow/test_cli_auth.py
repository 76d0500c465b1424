"""The CLI's side of API authentication, as separate processes: `radflow api` refuses to serve
open, `radflow dev` refuses open off loopback, `radflow orders` sends RADFLOW_API_TOKEN."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pydantic import SecretStr

from radflow.api.app import create_app
from radflow.infra.settings import Settings
from tests.api.fhir_stack import serve

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cli-reader-secret-0123456789"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADFLOW_")}
    return env | extra


async def run(*argv: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "radflow", *argv, cwd=cwd, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_radflow_api_refuses_to_start_without_authentication(tmp_path: Path) -> None:
    code, out = await run("api", "--port", "1", env=clean_env(), cwd=tmp_path)
    assert code == 2 and "refusing to serve the API without authentication" in out and "RADFLOW_API_AUTH=none" in out


async def test_a_bad_key_entry_is_refused_without_quoting_the_secret(tmp_path: Path) -> None:
    code, out = await run("api", "--port", "1", env=clean_env(RADFLOW_API_KEYS="ris:superuser:very-secret-value-123"), cwd=tmp_path)
    assert code == 2 and "unknown role" in out and "very-secret-value-123" not in out


async def test_radflow_dev_refuses_open_off_loopback(tmp_path: Path) -> None:
    code, out = await run("dev", "--bind", "0.0.0.0", "--data-dir", str(tmp_path / "d"), env=clean_env(), cwd=tmp_path)
    assert code == 2 and "refusing to serve the API without authentication" in out
    assert not (tmp_path / "d").exists()  # nothing started


async def test_radflow_orders_sends_the_token_from_the_environment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, temporal_address="127.0.0.1:1", api_keys=SecretStr(f"cli:reader:{TOKEN}"))
    async with serve(create_app(settings)) as url:
        without = await run("orders", "--api", url, "show", "ACC1", env=clean_env(), cwd=tmp_path)
        wrong = await run("orders", "--api", url, "show", "ACC1", env=clean_env(RADFLOW_API_TOKEN="nope-" + TOKEN), cwd=tmp_path)
        right = await run("orders", "--api", url, "show", "ACC1", env=clean_env(RADFLOW_API_TOKEN=TOKEN), cwd=tmp_path)
    assert without[0] == 1 and "error 401" in without[1]
    assert wrong[0] == 1 and "error 401" in wrong[1] and TOKEN not in wrong[1]
    # Accepted: the API has no Temporal here, so the order call itself is a 503.
    assert right[0] == 1 and "error 503" in right[1], right[1]
