"""deploy/Dockerfile, checked offline: what it copies exists and is what the wheel packages,
it runs as a non-root user with a health check of the endpoint radflow serves."""

from __future__ import annotations

import re
import tomllib

from tests.deploy.manifests import DEPLOY

ROOT = DEPLOY.parent
LINES = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]


def _instructions(name: str) -> list[str]:
    return [line[len(name) + 1:] for line in LINES if line.startswith(name + " ")]


def test_copies_exactly_the_packaged_folders():
    copied = {src.split()[0] for src in _instructions("COPY") if not src.startswith("--from")}
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert copied == packages | {"pyproject.toml"}
    for src in copied:
        assert (ROOT / src).exists(), src


def test_runs_as_an_unprivileged_user_with_a_health_check():
    (user,) = _instructions("USER")
    assert not user.startswith(("root", "0")), user
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"HEALTHCHECK .*\n?.*/livez", text)
    assert _instructions("ENTRYPOINT") == ['["radflow"]']


def test_ports_exposed_are_radflow_defaults():
    from radflow.settings import Settings

    (exposed,) = _instructions("EXPOSE")
    defaults = Settings(_env_file=None)
    assert {str(defaults.mllp_port), str(defaults.dicom_port), str(defaults.api_port)} <= set(exposed.split())
