"""The radflow worker: order and allocator workflows plus the delivery activities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from radflow.activities.registry import build_activities
from radflow.infra import code_cache
from radflow.infra.activity_metrics import ActivityMetricsInterceptor
from radflow.service.event_tracing import EventTraceInterceptor
from radflow.infra.settings import Settings
from radflow.workflows.allocator import AccessionAllocatorWorkflow
from radflow.workflows.order import ImagingOrderWorkflow
from radflow.workflows.order_index import OrderIndexWorkflow
from radflow.workflows.order_v1 import ImagingOrderWorkflowV1
from radflow.workflows.unmatched import UnmatchedItemWorkflow

# v1 stays registered for orders started before v2 (docs/workflow.md "Upgrades").
WORKFLOWS = [ImagingOrderWorkflow, ImagingOrderWorkflowV1, AccessionAllocatorWorkflow, UnmatchedItemWorkflow,
             OrderIndexWorkflow]


def workflow_runner(sandboxed: bool = True) -> WorkflowRunner:
    """Without the sandbox (RADFLOW_WORKER_SANDBOX=false, the default) or in Temporal's sandbox with
    its default restrictions. In the sandbox every workflow module is still imported afresh per run;
    only its compiled code is reused (radflow/infra/code_cache.py), which saved most of the sandbox's
    CPU per new order where no .pyc is written (bench/worker_cost.py)."""
    if not sandboxed:
        return UnsandboxedWorkflowRunner()
    code_cache.install(m for wf in WORKFLOWS for m in code_cache.module_and_parents(wf.__module__))
    return SandboxedWorkflowRunner()


def build_worker(
    client: Client,
    settings: Settings,
    *,
    activities: Sequence[Callable[..., Any]] | None = None,
    task_queue: str | None = None,
    runner: WorkflowRunner | None = None,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=list(activities) if activities is not None else build_activities(settings),
        workflow_runner=runner or workflow_runner(settings.worker_sandbox),
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.worker_workflow_pollers),
        nonsticky_to_sticky_poll_ratio=settings.worker_nonsticky_poll_ratio,
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.worker_activity_pollers),
        max_cached_workflows=settings.worker_max_cached_workflows,
        # Tracing comes with the client (radflow/service/temporal.py), which puts it first; these come after it.
        interceptors=[ActivityMetricsInterceptor(), EventTraceInterceptor()],
    )
