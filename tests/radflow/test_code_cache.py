"""The worker's sandbox compiles a workflow module once, and still runs it afresh, restricted, per run.

A real worker on the dev server runs a workflow defined in a scratch module (so the count of
compiles is this module's alone) through `radflow.worker.workflow_runner`'s code cache.
"""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from importlib.machinery import SourceFileLoader

import pytest
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from radflow.infra import code_cache
from radflow.worker import workflow_runner

pytestmark = pytest.mark.integration

MODULE = """
import datetime

from temporalio import workflow

RUNS = []  # a module executed afresh per workflow run holds one entry


@workflow.defn(name="CodeCacheProbe")
class Probe:
    @workflow.run
    async def run(self) -> str:
        RUNS.append(1)
        try:
            datetime.datetime.now()  # the sandbox refuses this in workflow code
            clock = "allowed"
        except Exception as err:  # RestrictedWorkflowAccessError
            clock = type(err).__name__
        return f"{VERSION} runs={len(RUNS)} clock={clock}"

VERSION = "v1"
"""


async def test_the_module_compiles_once_and_runs_fresh_and_restricted_per_run(
        client: Client, task_queue: str, tmp_path, monkeypatch) -> None:
    name = f"probe_{uuid.uuid4().hex[:8]}"
    source = tmp_path / f"{name}.py"
    source.write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    compiled: list[str] = []
    real = SourceFileLoader.source_to_code

    def counting(self, data, path, *args, **kwargs):  # noqa: ANN001, ANN202
        if str(path) == str(source):
            compiled.append(str(path))
        return real(self, data, path, *args, **kwargs)

    monkeypatch.setattr(SourceFileLoader, "source_to_code", counting)
    code_cache.install([name])
    probe = __import__(name).Probe  # the worker registers the class; each run re-imports its module
    runner = workflow_runner()
    assert isinstance(runner, SandboxedWorkflowRunner)  # the SDK's sandbox, default restrictions
    try:
        async with Worker(client, task_queue=task_queue, workflows=[probe], workflow_runner=runner):
            answers = [await client.execute_workflow("CodeCacheProbe", id=f"probe-{uuid.uuid4()}", task_queue=task_queue)
                       for _ in range(3)]
            assert answers == ["v1 runs=1 clock=RestrictedWorkflowAccessError"] * 3
            # One compile for the import outside the sandbox; none for the three sandboxed runs.
            assert len(compiled) == 1
            assert str(source) in code_cache.cached_files()

            # An edited file (new size and time) is compiled again, as a .pyc would be.
            source.write_text(MODULE.replace('VERSION = "v1"', 'VERSION = "v2-edited"'))
            later = source.stat().st_mtime + 5
            os.utime(source, (later, later))
            answer = await client.execute_workflow("CodeCacheProbe", id=f"probe-{uuid.uuid4()}", task_queue=task_queue)
            assert answer == "v2-edited runs=1 clock=RestrictedWorkflowAccessError"
            assert len(compiled) == 2
    finally:
        sys.modules.pop(name, None)
