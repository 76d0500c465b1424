"""Kubernetes manifests in deploy/k8s: schema-valid for the API server, and shaped as the
deployment needs (probes on served paths, budgets, autoscaler, secrets by reference only)."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import K8S, is_radflow_setting, k8s_documents, workloads

KUBERNETES_VERSION = "1.37.0"
DOCS = k8s_documents()


@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[f"{n}:{d['kind']}:{d['metadata']['name']}" for n, d in DOCS])
def test_every_document_validates_strictly_against_the_kubernetes_schema(name, doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_would_catch_a_misspelt_field():
    _, deployment = next((n, d) for n, d in DOCS if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicaz"] = broken["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_each_role_runs_once_with_probes_on_a_declared_port_and_resources():
    roles = {}
    for _, doc in workloads():
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        roles[container["args"][0]] = doc
        declared = {p["name"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] in declared, (container["name"], probe)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert set(container["resources"]) == {"requests", "limits"}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert sorted(roles) == ["api", "dicom", "mllp", "worker"]
    assert all(doc["spec"]["replicas"] >= 2 for doc in roles.values()), "losing one process must not stop a role"


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_workload_has_a_disruption_budget_and_services_select_a_workload():
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for _, d in workloads()]
    budgets = [d for _, d in DOCS if d["kind"] == "PodDisruptionBudget"]
    for labels in pod_labels:
        assert any(_selects(b["spec"]["selector"]["matchLabels"], labels) for b in budgets), labels
    for _, svc in ((n, d) for n, d in DOCS if d["kind"] == "Service"):
        assert any(_selects(svc["spec"]["selector"], labels) for labels in pod_labels), svc["metadata"]["name"]


def test_workers_autoscale_from_two():
    (hpa,) = [d for _, d in DOCS if d["kind"] == "HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "radflow-worker")
    assert hpa["spec"]["minReplicas"] >= 2


def test_secrets_are_referenced_never_defined_and_config_names_real_settings():
    assert not [d for _, d in DOCS if d["kind"] == "Secret"], "secret values do not belong in the repository"
    (config,) = [d for _, d in DOCS if d["kind"] == "ConfigMap"]
    unknown = [k for k in config["data"] if not is_radflow_setting(k)]
    assert unknown == [], f"ConfigMap keys radflow does not read: {unknown}"
    for _, doc in workloads():
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        for env in container.get("env", []):
            assert is_radflow_setting(env["name"]), env["name"]


def _container(doc):
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return container


def _mounted_from(doc, path: str) -> dict:
    """The pod volume that holds `path` through one of the container's mounts."""
    container = _container(doc)
    (mount,) = [m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
    (volume,) = [v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    return volume


def _role(component: str) -> dict:
    (doc,) = [d for _, d in workloads()
              if d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return doc


@pytest.mark.parametrize(("component", "prefix", "mutual"),
                         [("mllp", "MLLP", True), ("dicom", "DICOM", True), ("api", "API", False)])
def test_every_listener_serves_tls_from_a_referenced_secret(component, prefix, mutual):
    doc = _role(component)
    env = {e["name"]: e.get("value") for e in _container(doc).get("env", [])}
    names = ["CERT", "KEY"] + (["CLIENT_CA"] if mutual else [])
    for name in names:
        path = env[f"RADFLOW_{prefix}_TLS_{name}"]
        volume = _mounted_from(doc, path)
        assert volume["secret"]["secretName"] == f"radflow-{component}-tls", (component, name)
    # ATNA secure nodes: HL7 and DICOM peers must present a certificate the hospital CA signed.
    assert env.get(f"RADFLOW_{prefix}_TLS_REQUIRE_CLIENT_CERT") == ("true" if mutual else None)


def test_api_probes_and_scrapes_speak_https():
    doc = _role("api")
    container = _container(doc)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"].get("scheme") == "HTTPS", probe
    assert doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scheme"] == "https"


def test_worker_delivers_to_the_ehr_over_verified_tls():
    doc = _role("worker")
    env = {e["name"]: e.get("value") for e in _container(doc).get("env", [])}
    assert env["RADFLOW_EHR_MLLP_TLS"] == "true"
    assert _mounted_from(doc, env["RADFLOW_EHR_MLLP_TLS_CA"])["configMap"]["name"] == "radflow-peer-ca"
