"""The proof on a bare GPU image (torch, numpy and pytest; perhaps no C compiler, no Python headers, none of the
analysis or cluster packages): the proof says what its compiled arm needs and, lacking it, goes straight to the
CUDA-graph arm; `import analysis` needs no threadpoolctl; `pytest -m gpu` collects. Missing packages are
simulated by an import blocker in a child process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

BARE = ("threadpoolctl", "pandas", "scipy", "matplotlib", "dask", "distributed", "joblib", "tqdm", "torchvision",
        "psutil")


def run_bare(code: str, blocked=BARE, timeout: float = 300) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter where importing any of `blocked` fails as on an image that lacks them."""
    prelude = textwrap.dedent(f"""
        import importlib.abc, sys
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {set(blocked)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Blocker())
    """)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def test_import_analysis_needs_no_threadpoolctl():
    proc = run_bare("""
        import analysis
        from analysis.blas import one_blas_thread
        with one_blas_thread():
            pass
        print("ok")
    """, blocked=("threadpoolctl",))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_pytest_m_gpu_collects_without_optional_packages():
    proc = run_bare("""
        import pytest
        sys.exit(pytest.main(["-m", "gpu", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"]))
    """)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "test_cuda_fp16_run" in out and "test_cuda_graph_replays_the_compiled_step" in out, out[-3000:]


def test_toolchain_reports_compiler_and_headers(tmp_path, monkeypatch):
    import sysconfig

    from speedrun.conformance.toolchain import toolchain

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: {"include": str(tmp_path)})
    bare = toolchain()
    assert bare["c_compiler"] is None and bare["python_headers"] is None and not bare["ok"]
    assert "C compiler" in bare["missing"] and "Python headers" in bare["missing"]
    (tmp_path / "gcc").write_text("#!/bin/sh\n")
    (tmp_path / "gcc").chmod(0o755)
    (tmp_path / "Python.h").write_text("")
    full = toolchain()
    assert full["c_compiler"] == str(tmp_path / "gcc") and full["python_headers"] == str(tmp_path) and full["ok"]


def test_without_a_toolchain_the_proof_goes_straight_to_the_graph_arm(tmp_path, monkeypatch, capsys):
    """The real proof's argument handling, up to the plan: with no compiler it plans the fast arm as `graph`."""
    from speedrun.conformance.verify import __main__ as proof

    missing = dict(c_compiler=None, python_headers=None, ok=False, missing=["C compiler", "Python headers"])
    planned = {}

    def gpu_plan(data_dir, seed_main, out, runs, modes):
        planned["modes"] = modes
        raise SystemExit(0)

    monkeypatch.setattr(proof, "toolchain", lambda: missing)
    monkeypatch.setattr(proof, "gpu_plan", gpu_plan)
    monkeypatch.setattr(proof, "git_blob_id", lambda data: proof.SEED_BLOB)
    seed = tmp_path / "main.py"
    seed.write_text("")
    with pytest.raises(SystemExit):
        proof.main(["--data-dir", str(tmp_path), "--seed-main", str(seed), "--out", str(tmp_path / "out")])
    assert planned["modes"] == ("graph",)
    assert "C compiler" in capsys.readouterr().out
    monkeypatch.setattr(proof, "toolchain", lambda: dict(missing, ok=True, missing=[]))
    with pytest.raises(SystemExit):
        proof.main(["--data-dir", str(tmp_path), "--seed-main", str(seed), "--out", str(tmp_path / "out")])
    assert planned["modes"] == ("compile+graph", "compile", "graph")
