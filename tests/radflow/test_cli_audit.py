"""`radflow orders ...` as a separate process: its principal and the OS user it runs as are audited."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from pydantic import SecretStr

from radflow.api.app import create_app
from radflow.infra.settings import Settings
from tests.api.fhir_stack import serve
from tests.radflow.test_cli_auth import TOKEN, clean_env, run


async def test_the_cli_reports_its_os_user_and_the_audit_records_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, temporal_address="127.0.0.1:1", api_keys=SecretStr(f"cli:reader:{TOKEN}"))
    async with serve(create_app(settings)) as url:
        code, out = await run("orders", "--api", url, "show", "ACC1", env=clean_env(RADFLOW_API_TOKEN=TOKEN), cwd=tmp_path)
    assert code == 1 and "error 503" in out  # no Temporal here: the call itself is refused, and audited
    (record,) = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert (record["who"], record["action"], record["outcome"]) == ("cli", "GET /orders/{accession}", 503)
    assert record["client_user"] == getpass.getuser()
