"""The trainer never imports speedrun.conformance (the checks against the seed's code): read from every trainer
module's source, and seen at run time, where importing every trainer module leaves the package unloaded."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "speedrun.conformance"
# speedrun's top level is the trainer. verify.py is the one exception: `python -m speedrun.verify` hands over to
# the GPU proof in the conformance package, from inside its `if __name__ == "__main__":` block only (the run-time
# test below imports it and checks that nothing of the package comes with it).
ALIAS = "verify.py"
TRAINER = sorted(p for p in (ROOT / "speedrun").glob("*.py") if p.name != ALIAS)


def conformance_imports(source: str, module: str) -> list[str]:
    """Every import in `source` (the module named `module`, e.g. "speedrun.train") that reaches the conformance
    package: plain, relative (`from . import conformance` too) and `importlib.import_module` with a literal."""
    package = module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            target = str(node.args[0].value)
            if target.startswith("."):
                dots = len(target) - len(target.lstrip("."))
                parent = package.split(".")[:len(package.split(".")) - dots + 1]
                target = ".".join(parent + [target.lstrip(".")])
            names = [target]
        found += [n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")]
    return found


@pytest.mark.parametrize("snippet", [
    "import speedrun.conformance.seed_load",
    "from speedrun.conformance import seed_diff",
    "from .conformance.seed_load import load_seed",
    "from . import conformance",
    "import importlib\nm = importlib.import_module('.conformance.seed_diff', __package__)",
])
def test_the_scan_sees_every_form_of_import(snippet):
    assert conformance_imports(snippet, "speedrun.train"), snippet


def test_the_scan_passes_the_trainers_own_imports():
    assert not conformance_imports("from .config import TrainConfig\nfrom . import runtime\nimport torch",
                                   "speedrun.train")


@pytest.mark.parametrize("path", TRAINER, ids=[p.name for p in TRAINER])
def test_no_trainer_module_imports_conformance(path):
    found = conformance_imports(path.read_text(encoding="utf-8"), f"speedrun.{path.stem}")
    assert not found, f"speedrun/{path.name} imports {found}; the trainer must not depend on its conformance checks"


def test_importing_every_trainer_module_loads_no_conformance():
    modules = [f"speedrun.{p.stem}" for p in (ROOT / "speedrun").glob("*.py") if p.stem != "__main__"]
    assert "speedrun.verify" in modules and "speedrun.train" in modules
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.startswith({PACKAGE!r})))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"importing the trainer loaded {run.stdout.strip()}"
