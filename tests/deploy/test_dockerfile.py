"""deploy/Dockerfile, checked offline: what it copies exists and is what the wheel packages,
it runs as a non-root user with a health check of the endpoint radflow serves."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import tomllib

from tests.deploy.manifests import DEPLOY

ROOT = DEPLOY.parent
LINES = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]


def _instructions(name: str) -> list[str]:
    return [line[len(name) + 1:] for line in LINES if line.startswith(name + " ")]


def test_copies_exactly_the_packaged_folders():
    copied = {src.split()[0] for src in _instructions("COPY") if not src.startswith("--from")}
    folders = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    assert copied == folders | {"pyproject.toml"}
    for src in copied:
        assert (ROOT / src).exists(), src


def test_runs_as_an_unprivileged_user_with_a_health_check():
    (user,) = _instructions("USER")
    assert not user.startswith(("root", "0")), user
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"HEALTHCHECK .*\n?.*/livez", text)
    assert _instructions("ENTRYPOINT") == ['["radflow"]']


def test_ports_exposed_are_radflow_defaults():
    from radflow.infra.settings import Settings

    (exposed,) = _instructions("EXPOSE")
    defaults = Settings(_env_file=None)
    assert {str(defaults.mllp_port), str(defaults.dicom_port), str(defaults.api_port)} <= set(exposed.split())


def _healthcheck_command() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("HEALTHCHECK ")]
    return json.loads(line.split(" CMD ", 1)[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_health_check_passes_on_either_port_and_fails_when_nothing_answers():
    class Livez(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            self.send_response(200 if self.path == "/livez" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Livez)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    live, dead = str(server.server_address[1]), str(_free_port())
    cmd = _healthcheck_command()
    assert cmd[0] == "python"
    try:
        def run(health: str, api: str) -> int:
            env = {**os.environ, "RADFLOW_HEALTH_PORT": health, "RADFLOW_API_PORT": api}
            return subprocess.run([sys.executable, *cmd[1:]], env=env, timeout=30).returncode

        assert run(live, dead) == 0  # worker / mllp / dicom
        assert run(dead, live) == 0  # api
        assert run(dead, dead) == 1
    finally:
        server.shutdown()
