"""deploy/make-secrets.sh writes files radflow accepts (owner-only, in its key formats) and
never overwrites a key on a second run."""

from __future__ import annotations

import stat
import subprocess

from radflow.service.codec import load_keys
from radflow.service.patient_search import load_hmac_key
from tests.deploy.manifests import DEPLOY, compose


def test_the_secrets_load_in_radflow_and_are_kept_on_rerun(tmp_path):
    out = tmp_path / "secrets"
    subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), str(out)], check=True, capture_output=True)
    keys = load_keys(out / "codec_keys")
    assert len(keys) == 1 and len(keys[0].secret) == 32
    assert len(load_hmac_key(out / "search_hmac_key")) == 32
    name, roles, secret = (out / "api_keys").read_text().splitlines()[-1].split(":")
    assert (name, roles, len(secret)) == ("admin", "admin", 40)
    url = (out / "radflow-secrets.env").read_text().strip()
    assert url.startswith("RADFLOW_READ_MODEL_URL=postgresql://radflow:") and url.endswith("@radflow-db:5432/radflow")
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), str(out)], check=True, capture_output=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_it_writes_every_secret_compose_mounts():
    script = (DEPLOY / "make-secrets.sh").read_text()
    for spec in compose()["secrets"].values():
        assert f'"$dir/{spec["file"].removeprefix("./secrets/")}"' in script, spec["file"]
