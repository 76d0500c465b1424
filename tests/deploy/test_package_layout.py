"""The wheel installs one top-level package (radflow.*), and its layers import only downwards.

Layers, bottom up: radflow.domain (pure) < radflow.infra (process plumbing) < radflow.service
(the Temporal-facing order service) < the edges (radflow.workflows, .activities, .gateways, .api)
< the composition root (radflow.cli, .dev, .components, ...). A module may import its own layer
and those below; no package both imports the gateways and is imported by them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"radflow": "radflow", "api": "radflow.api", "domain": "radflow.domain", "workflows": "radflow.workflows",
           "activities": "radflow.activities", "gateways": "radflow.gateways"}
LAYERS = (("radflow.domain", 0), ("radflow.infra", 1), ("radflow.service", 2), ("radflow.workflows", 3),
          ("radflow.activities", 3), ("radflow.gateways", 3), ("radflow.api", 3))
ROOT_LAYER = 4


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    for prefix, level in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return level
    return ROOT_LAYER if module == "radflow" or module.startswith("radflow.") else None


def _sources() -> list[Path]:
    return [p for top in FOLDERS for p in (ROOT / top).rglob("*.py") if "node_modules" not in p.parts]


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
    return found


def test_every_import_goes_through_radflow_and_points_down() -> None:
    wrong = []
    for path in _sources():
        mine = _layer(_module(path))
        for target in _imports(path):
            if target.split(".")[0] in FOLDERS and target.split(".")[0] != "radflow":
                wrong.append(f"{path.relative_to(ROOT)}: imports {target} (not radflow.{target})")
            elif (theirs := _layer(target)) is not None and theirs > mine:
                wrong.append(f"{path.relative_to(ROOT)}: imports {target} from a layer above")
    assert wrong == []


def test_the_layer_check_sees_a_violation(tmp_path: Path) -> None:
    # The check above must be able to fail: an upward import is found by the same helpers.
    bad = tmp_path / "bad.py"
    bad.write_text("from radflow.gateways.hl7_gateway import Hl7Gateway\nimport api.app\n")
    targets = _imports(bad)
    assert targets == ["radflow.gateways.hl7_gateway", "api.app"]
    assert _layer(targets[0]) > _layer("radflow.service.ordering")


def test_wheel_installs_only_radflow_with_every_package(tmp_path: Path) -> None:
    # Built from a copy: pip builds in the source tree and would leave build/ in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", *FOLDERS):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("node_modules", "__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
                   check=True, capture_output=True, timeout=240)
    wheel = next(tmp_path.glob("radflow-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("radflow-")} == {"radflow"}
    packages = {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    expected = {_module(p).replace(".", "/") for p in _sources() if p.name == "__init__.py"}
    assert packages == expected  # a folder missing from pyproject's package list fails here
    assert "radflow/fhir_server/server.mjs" in names  # package data of `radflow demo`

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import radflow.cli, radflow.api.app, radflow.gateways.dicom.server, radflow.workflows.order, "
             "radflow.activities.registry; print(radflow.api.app.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(site / "radflow" / "api" / "app.py")
