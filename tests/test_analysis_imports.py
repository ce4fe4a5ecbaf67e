"""Import direction (README.md, Layout): studies → speedrun; analysis → nothing of ours. Checked on the source's AST."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_THIRD_PARTY = {"numpy", "pandas", "scipy", "matplotlib", "joblib", "threadpoolctl", "tomli"}


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
    bad = [(p.name, m) for p, m in imported_modules(package)
           if m not in sys.stdlib_module_names and m not in ALLOWED_THIRD_PARTY and m != "__future__"]
    assert not bad, f"analysis/ may import only the stdlib and {sorted(ALLOWED_THIRD_PARTY)}; found {bad}"
    forbidden = {"torch", "torchvision", "speedrun", "studies"}
    assert not [(p.name, m) for p, m in imported_modules(package) if m in forbidden]


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
