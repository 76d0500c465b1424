"""deploy/compose.yaml, checked offline: the structure Docker Compose resolves (services,
references, secrets, volumes) and radflow's own expectations of the topology."""

from __future__ import annotations

from tests.deploy.manifests import DEPLOY, compose, is_radflow_setting

RADFLOW_ROLES = {"worker": "worker", "mllp": "mllp", "dicom": "dicom", "api": "api", "radflow-setup": "setup"}


def test_the_topology_has_every_part():
    services = compose()["services"]
    assert set(services) >= {"temporal", "temporal-db", "temporal-ui", "radflow-db", "orthanc", "hapi", *RADFLOW_ROLES}
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name, role in RADFLOW_ROLES.items():
        assert services[name]["image"].startswith("radflow:"), name
        assert services[name]["command"] == [role], name


def test_temporal_runs_on_postgresql_with_sql_visibility():
    temporal = compose()["services"]["temporal"]
    assert temporal["environment"]["DB"] == "postgres12"  # SQL visibility: custom search attributes work
    assert temporal["environment"]["POSTGRES_SEEDS"] == "temporal-db"


def test_long_running_radflow_services_have_readiness_checks_and_restart():
    services = compose()["services"]
    for name in ("worker", "mllp", "dicom", "api"):
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "/readyz" in check, name
        assert services[name]["restart"] == "unless-stopped"


def test_references_resolve():
    doc = compose()
    services, secrets, volumes = doc["services"], set(doc["secrets"]), set(doc["volumes"])
    for name, svc in services.items():
        depends = svc.get("depends_on", {})
        for dep in depends if isinstance(depends, list) else depends.keys():
            assert dep in services, (name, dep)
        for secret in svc.get("secrets", []):
            assert secret in secrets, (name, secret)
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            assert source in volumes or source.startswith(("/", ".")), (name, source)
    for spec in doc["secrets"].values():
        assert spec["file"].startswith("./secrets/"), "secrets come from files, never inline"


def test_radflow_environment_names_real_settings():
    doc = compose()
    names = set()
    for name in RADFLOW_ROLES:
        names |= set(doc["services"][name].get("environment", {}))
    env_file = (DEPLOY / "radflow.env").read_text().splitlines()
    names |= {line.split("=", 1)[0] for line in env_file if line and not line.startswith("#")}
    unknown = sorted(n for n in names if not is_radflow_setting(n))
    assert unknown == [], f"settings radflow does not read: {unknown}"


def test_no_secret_values_in_the_environment():
    doc = compose()
    for name, svc in doc["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if str(value) in ("true", "false"):
                continue  # a switch, not a secret
            if any(word in key.upper() for word in ("PASSWORD", "SECRET", "TOKEN", "KEYS")):
                assert key.endswith("_FILE") or str(value).startswith("/run/secrets/"), (name, key)
