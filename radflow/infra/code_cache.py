"""Compiled code of the workflow modules, kept in memory for Temporal's workflow sandbox.

The sandbox imports a workflow's module (and its parent packages) afresh for every new
workflow run, so every new order executes `radflow.workflows.order` again: that is its
protection (fresh globals, restricted `datetime`, `random`...). Executing the module is cheap;
compiling its source is not, and Python compiles on every import when it cannot read a `.pyc`
(`PYTHONDONTWRITEBYTECODE=1` on a source checkout: CI, many dev containers). This keeps each
module's code object in memory, keyed like a `.pyc` by file, size and modification time, so
only the first run compiles. The module still executes in each sandbox as before.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterable, Sequence
from types import CodeType, ModuleType

_codes: dict[tuple[str, float, int], CodeType] = {}


class _CachingLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        stats = self.path_stats(path)
        key = (path, stats["mtime"], stats.get("size", -1))
        code = _codes.get(key)
        if code is None:
            code = super().get_code(fullname)
            assert code is not None  # a source file always compiles to code (or raises)
            _codes[key] = code
        return code


class _CodeCacheFinder(importlib.abc.MetaPathFinder):
    """Asks the other finders (the editable install's included) and swaps in the caching loader."""

    def __init__(self, modules: Iterable[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None):  # noqa: ANN201
        if fullname not in self.modules:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            loader = spec.loader
            if type(loader) is importlib.machinery.SourceFileLoader:
                spec.loader = _CachingLoader(loader.name, loader.path)
            return spec
        return None


def module_and_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def install(modules: Iterable[str]) -> None:
    """Cache the code of these modules (exact names) from now on; idempotent per name."""
    wanted = set(modules)
    for finder in sys.meta_path:
        if isinstance(finder, _CodeCacheFinder):
            wanted -= finder.modules
    if wanted:
        sys.meta_path.insert(0, _CodeCacheFinder(wanted))


def cached_files() -> list[str]:
    return sorted({path for path, _, _ in _codes})
