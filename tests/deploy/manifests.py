"""Loading deploy/ files for the offline checks (no Docker or cluster on these machines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from radflow.infra.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def workloads() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, doc in k8s_documents() if doc["kind"] in WORKLOAD_KINDS]


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def is_radflow_setting(env_name: str) -> bool:
    """RADFLOW_X names a Settings field x: a typo or a removed setting is silently ignored otherwise."""
    return env_name.startswith("RADFLOW_") and env_name.removeprefix("RADFLOW_").lower() in Settings.model_fields
