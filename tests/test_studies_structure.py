"""Package rules for studies/ (small modules with __all__, speedrun's public API only, never analysis, nothing
at import) and the device plan (one run per GPU, pinned by name, CUDA never touched by the scheduler)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studies.devices import DeviceError, Slot, parse_devices, plan_slots

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "studies").rglob("*.py"))  # export/ too


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT / "studies")) for p in MODULES])
def test_module_rules(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 350, f"{path.name} is over 350 lines; split it by job"
    if path.name != "__main__.py":
        assert "__all__" in text, f"{path.name} must declare __all__"
    imports = imported_modules(path)
    assert not any(m == "analysis" or m.startswith("analysis.") for m in imports), "studies must never import analysis"
    private = [m for m in imports if m.startswith("speedrun.") and m != "speedrun.config"]
    assert not private, f"{path.name} reaches into speedrun internals {private}; use speedrun's public API"


def test_import_runs_nothing_and_touches_no_gpu(tmp_path):
    code = ("import studies, studies.cli, studies.scheduler, sys, torch; "
            "assert not torch.cuda.is_initialized(); assert 'analysis' not in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == "ok", proc.stderr
    assert not list(tmp_path.iterdir()), "importing studies must not create files"


def test_gpu_slots_one_per_gpu_pinned_by_name(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert plan_slots({"auto"}, None, None) == [Slot(0, "cuda:0", None), Slot(1, "cuda:1", None)]
    assert plan_slots({"auto"}, 1, None) == [Slot(0, "cuda:0", None)]
    with pytest.raises(DeviceError, match="at most one run per GPU"):
        plan_slots({"auto"}, 3, None)
    assert [s.device for s in plan_slots({"cuda"}, None, parse_devices("1,0"))] == ["cuda:1", "cuda:0"]
    with pytest.raises(DeviceError, match="fixes device to cpu"):
        plan_slots({"cpu"}, None, [0])


def test_cpu_slots_split_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert plan_slots({"auto"}, None, None) == [Slot(0, None, None)], "CPU default: one run, in this process"
    slots = plan_slots({"cpu"}, 2, None)
    assert len(slots) == 2 and all(s.device is None and s.threads >= 1 for s in slots)
    with pytest.raises(DeviceError, match="distinct GPU indices"):
        parse_devices("0,0")
