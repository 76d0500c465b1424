"""The worker's polling comes from settings (RADFLOW_WORKER_*), with defaults measured by bench/burst.py."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from radflow.infra.settings import Settings
from radflow.worker import WORKFLOWS, build_worker

pytestmark = pytest.mark.integration


def _config(client: Client, task_queue: str, tmp_path) -> dict:  # noqa: ANN001
    """The configuration `build_worker` gives a worker from the environment's settings."""
    return build_worker(client, Settings(_env_file=None, data_dir=tmp_path), activities=[],
                        task_queue=task_queue).config()  # type: ignore[call-arg,return-value]


def _tuning(config: dict) -> tuple:
    return (config["workflow_task_poller_behavior"], config["nonsticky_to_sticky_poll_ratio"],
            config["activity_task_poller_behavior"], config["max_cached_workflows"])


async def test_defaults_give_new_orders_first_tasks_half_the_workflow_polls(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    for name in ("RADFLOW_WORKER_WORKFLOW_POLLERS", "RADFLOW_WORKER_NONSTICKY_POLL_RATIO", "RADFLOW_WORKER_ACTIVITY_POLLERS",
                 "RADFLOW_WORKER_MAX_CACHED_WORKFLOWS"):
        monkeypatch.delenv(name, raising=False)
    # The SDK's default (5 polls, 0.2 on the shared queue) leaves one poll for every new order's
    # first task: on `radflow dev` that held processing to 0.69 of ingest (bench/burst.py).
    assert _tuning(_config(client, task_queue, tmp_path)) == (
        PollerBehaviorSimpleMaximum(32), 0.5, PollerBehaviorSimpleMaximum(5), 1000)


async def test_environment_overrides_the_polls(client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RADFLOW_WORKER_WORKFLOW_POLLERS", "4")
    monkeypatch.setenv("RADFLOW_WORKER_NONSTICKY_POLL_RATIO", "0.25")
    monkeypatch.setenv("RADFLOW_WORKER_ACTIVITY_POLLERS", "3")
    monkeypatch.setenv("RADFLOW_WORKER_MAX_CACHED_WORKFLOWS", "250")
    assert _tuning(_config(client, task_queue, tmp_path)) == (
        PollerBehaviorSimpleMaximum(4), 0.25, PollerBehaviorSimpleMaximum(3), 250)


async def test_the_sandbox_mode_checks_every_workflow_in_the_sandbox(client: Client, task_queue: str, tmp_path,
                                                                     monkeypatch) -> None:
    """RADFLOW_WORKER_SANDBOX=true: the worker imports each workflow in the sandbox when it is built."""
    monkeypatch.setenv("RADFLOW_WORKER_SANDBOX", "true")
    prepared: list[str] = []
    real = SandboxedWorkflowRunner.prepare_workflow
    monkeypatch.setattr(SandboxedWorkflowRunner, "prepare_workflow",
                        lambda self, defn: (prepared.append(defn.name or ""), real(self, defn))[1])
    assert isinstance(_config(client, task_queue, tmp_path)["workflow_runner"], SandboxedWorkflowRunner)
    assert sorted(prepared) == sorted(wf.__temporal_workflow_definition.name for wf in WORKFLOWS)  # type: ignore[attr-defined]
    monkeypatch.delenv("RADFLOW_WORKER_SANDBOX")
    assert isinstance(_config(client, f"{task_queue}-default", tmp_path)["workflow_runner"], UnsandboxedWorkflowRunner)
