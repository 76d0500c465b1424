"""The workflow modules are safe to run outside Temporal's sandbox (RADFLOW_WORKER_SANDBOX=false).

Without the sandbox nothing stops a workflow from calling the clock or sharing module state
between orders at run time, so these rules hold for every file in `workflows/` instead:
- imports: only the standard library's pure parts, temporalio and radflow.domain (no I/O, no clock,
  no randomness: `random`, `time`, `uuid`, `os`... are not importable from here);
- no `datetime.now()`/`utcnow()`/`today()`, no `open()`/`input()`/`print()`, no `global`;
- module-level values are immutable (str, numbers, tuples, frozensets, read-only mappings, enums):
  one order cannot change what another order's run reads.
The rest of the suite still runs every workflow in the sandbox (tests/workflows use the SDK's
default runner, and the replayer replays every saved history in it), so a restricted call on a
tested path fails there too.
"""

from __future__ import annotations

import ast
import enum
import importlib
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType, ModuleType

import pytest
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from radflow.infra.settings import Settings
from radflow.worker import WORKFLOWS, workflow_runner

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "workflows").glob("*.py"))
ALLOWED_IMPORTS = ("__future__", "asyncio", "datetime", "typing", "collections.abc", "dataclasses", "enum",
                   "types", "temporalio", "radflow.domain", "radflow.workflows")
CLOCK_CALLS = {"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp"}
IO_NAMES = {"open", "input", "print", "exec", "eval", "breakpoint"}
IMMUTABLE = (str, bytes, int, float, bool, type(None), timedelta, enum.Enum)


def source_problems(source: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if not any(name == ok or name.startswith(ok + ".") for ok in ALLOWED_IMPORTS):
                    problems.append(f"line {node.lineno}: imports {name}")
        elif isinstance(node, ast.Global):
            problems.append(f"line {node.lineno}: global {', '.join(node.names)}")
        elif isinstance(node, ast.Call):
            func = node.func
            own_clock = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "workflow"
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_CALLS and not own_clock:
                problems.append(f"line {node.lineno}: calls .{func.attr}() (use workflow.now())")
            elif isinstance(func, ast.Name) and func.id in IO_NAMES:
                problems.append(f"line {node.lineno}: calls {func.id}()")
    return problems


def _immutable(value: object) -> bool:
    if isinstance(value, IMMUTABLE) or type(value) is object:  # object(): a sentinel
        return True
    if isinstance(value, tuple | frozenset):
        return all(_immutable(v) for v in value)
    if isinstance(value, MappingProxyType):
        return all(_immutable(k) and _immutable(v) for k, v in value.items())
    return False


def state_problems(module: ModuleType, source: str) -> list[str]:
    """Module-level names this file assigns whose value could be changed by a run."""
    assigned = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        assigned |= {t.id for t in targets if isinstance(t, ast.Name)}
    return [f"{name} is a {type(getattr(module, name)).__name__}" for name in sorted(assigned)
            if hasattr(module, name) and not isinstance(getattr(module, name), type) and not _immutable(getattr(module, name))]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_workflow_module_has_no_clock_io_or_shared_state(path: Path) -> None:
    source = path.read_text()
    module = importlib.import_module(f"radflow.workflows.{path.stem}")
    assert source_problems(source) + state_problems(module, source) == []


def test_the_checks_see_violations() -> None:
    bad = ("import time\nfrom radflow.service.ordering import OrderService\nfrom datetime import datetime\n"
           "SEEN = {}\nLIMITS = (1, [2])\n"
           "def f():\n    global SEEN\n    open('x')\n    return datetime.now()\n")
    found = source_problems(bad)
    assert any("imports time" in p for p in found) and any("radflow.service" in p for p in found)
    assert any("global SEEN" in p for p in found) and any("open()" in p for p in found)
    assert any(".now()" in p for p in found)
    module = ModuleType("probe")
    exec(compile(bad.split("def f")[0], "probe", "exec"), module.__dict__)  # noqa: S102 - the probe's own text
    assert state_problems(module, bad) == ["LIMITS is a tuple", "SEEN is a dict"]


def test_the_worker_runs_workflows_outside_the_sandbox_unless_asked(tmp_path: Path) -> None:
    assert isinstance(workflow_runner(Settings(_env_file=None, data_dir=tmp_path).worker_sandbox), UnsandboxedWorkflowRunner)
    assert isinstance(workflow_runner(Settings(_env_file=None, data_dir=tmp_path, worker_sandbox=True).worker_sandbox),
                      SandboxedWorkflowRunner)
    assert {wf.__module__.rsplit(".", 1)[-1] for wf in WORKFLOWS} <= {p.stem for p in FILES}
