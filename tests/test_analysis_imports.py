"""Import direction (README.md, Layout): studies → speedrun; analysis → nothing of ours but `common`; `common` (the
shared floor every package may import) → nothing of ours, no torch, only the stdlib and scipy. Checked on the
source's AST."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_THIRD_PARTY = {"numpy", "pandas", "scipy", "matplotlib", "joblib", "threadpoolctl", "tomli"}
COMMON_THIRD_PARTY = {"scipy"}  # imported inside the functions that compute a p-value, never at import


def imported_modules(package: Path):
    """(file, top-level module) for every absolute import in the package's .py files."""
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.module.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.level > len(path.relative_to(package).parts):
                yield path, "<relative import above the package>"  # a subpackage's module may climb to the top
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
                yield path, "<dynamic __import__>"


def _package(name: str) -> Path:
    path = ROOT / name
    if not path.is_dir() or not any(path.rglob("*.py")):
        pytest.skip(f"{name}/ has no Python source yet")
    return path


def test_analysis_imports_only_stdlib_and_its_allowed_dependencies():
    package = _package("analysis")
    bad = [(p.name, m) for p, m in imported_modules(package) if m not in sys.stdlib_module_names
           and m not in ALLOWED_THIRD_PARTY and m not in ("__future__", "common")]
    assert not bad, f"analysis/ may import only the stdlib, common and {sorted(ALLOWED_THIRD_PARTY)}; found {bad}"
    forbidden = {"torch", "torchvision", "speedrun", "studies"}
    assert not [(p.name, m) for p, m in imported_modules(package) if m in forbidden]


def test_common_imports_only_the_stdlib_and_scipy():
    package = _package("common")
    bad = [(p.name, m) for p, m in imported_modules(package)
           if m not in sys.stdlib_module_names and m not in COMMON_THIRD_PARTY and m not in ("__future__", "common")]
    assert not bad, (f"common/ may import only the stdlib and {sorted(COMMON_THIRD_PARTY)} (every package imports "
                     f"it, the torch-free analysis and GPU proof too); found {bad}")


def test_importing_common_loads_nothing_heavy_and_runs_nothing():
    code = ("import sys, pkgutil, importlib, common; "
            "[importlib.import_module('common.' + m.name) for m in pkgutil.iter_modules(common.__path__)]; "
            "bad = [m for m in ('torch', 'numpy', 'pandas', 'scipy', 'speedrun', 'studies', 'analysis') "
            "if m in sys.modules]; assert not bad, bad")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr, run.stderr


@pytest.mark.parametrize("package", ["speedrun", "studies", "analysis"])
def test_every_package_takes_the_shared_facts_from_common(package):
    """The facts that had twins (record constants, JSON writing, run states, seed table, Welch, pooling) have one
    home: no package defines them again."""
    twins = {"SCHEMA_VERSION", "RECORD_STATUSES", "RESULT_FIELDS", "EXECUTION_FIELDS", "STATUSES", "FINAL",
             "STATES", "PRIOR_DOF", "PRIOR_DF", "COLUMNS", "_COLUMNS", "EPOCH_COLUMNS", "ALPHA", "MARGIN",
             "EQUIVALENCE_MARGIN"}
    defs = {"strict_json", "json_text", "atomic_write_text", "fsync_dir", "_welch_parts", "_cells", "_row"}
    found = []
    for path in sorted(_package(package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    name = getattr(target, "id", None)
                    if name in twins and not _is_name_from_common(node.value):
                        found.append((path.name, name))
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in defs and not _delegates(node):
                found.append((path.name, node.name))
    assert not found, f"{package}/ defines again what common/ holds: {found}"


def _delegates(node) -> bool:
    """A wrapper that hands the work to common's writer (studies' owner-tagged temp names), not a second writer."""
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", None) == "atomic_write" for n in ast.walk(node))


def _is_name_from_common(value) -> bool:
    """`X = NAME` or `X = f(NAME ...)`: a re-export or a derivation of an imported name, not a literal twin."""
    return not isinstance(value, (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict)) and not (
        isinstance(value, ast.Call) and getattr(value.func, "id", None) == "frozenset")


def test_studies_does_not_import_analysis():
    found = [(p.name, m) for p, m in imported_modules(_package("studies")) if m == "analysis"]
    assert not found, f"studies/ must not import analysis: {found}"


def test_speedrun_imports_neither_studies_nor_analysis():
    found = [(p.name, m) for p, m in imported_modules(_package("speedrun")) if m in ("studies", "analysis")]
    assert not found, f"speedrun/ must not import studies or analysis: {found}"


def test_importing_analysis_loads_no_torch_and_runs_nothing():
    code = ("import sys, analysis, analysis.cli, analysis.testing; "
            "bad = [m for m in ('torch', 'speedrun', 'studies', 'matplotlib.pyplot') if m in sys.modules]; "
            "assert not bad, bad; print(len(analysis.__all__))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(len(__import__("analysis").__all__)) and not run.stderr


def test_public_api_names_exist():
    import analysis

    missing = [name for name in analysis.__all__ if not hasattr(analysis, name)]
    assert not missing
