"""The dask.distributed path: a small grid on a LocalCluster of two single-threaded worker processes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from studies import RunOptions, load_study, run_study

ROOT = Path(__file__).resolve().parents[1]

STUDY = """
name = "dasked"
description = "a small grid on a local dask cluster"
[grid]
width = [2, 4]
seed = [0, 1]
[fixed]
epochs = 1
device = "cpu"
data = "synthetic"
train_subset = 128
test_subset = 64
batch_size = 64
threads = 1
[policy]
retries = 1
"""


def test_dask_backend_runs_a_grid_on_a_local_cluster(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    path = tmp_path / "dasked.toml"
    path.write_text(STUDY)
    study = load_study(path)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        options = RunOptions(results=str(tmp_path / "r"), backend="dask", address=cluster.scheduler_address,
                             progress=False)
        summary = run_study(study, options)
        assert (summary.ok, summary.failed, summary.exit_code) == (4, 0, 0), summary
        again = run_study(study, options)
        assert (again.ok, again.skipped) == (0, 4), "a second run must skip what the cluster finished"
    runs = tmp_path / "r" / "dasked" / "runs"
    records = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    assert sorted(r["run_id"] for r in records) == sorted(r.run_id for r in study.runs())
    assert all(r["status"] == "ok" and r["study"] == "dasked" for r in records)
    hosts_pids = {line.split(" pid ")[1].split()[0] for p in (tmp_path / "r" / "dasked" / "logs").glob("*.log")
                  for line in p.read_text().splitlines() if line.startswith("# attempt ")}
    assert os.getpid() not in {int(p) for p in hosts_pids}, "runs must execute on the dask workers, not here"
    assert not list((tmp_path / "r" / "dasked" / "locks").iterdir())


def test_dask_needs_a_reachable_scheduler(tmp_path):
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")
    path = tmp_path / "dasked.toml"
    path.write_text(STUDY)
    from studies.backends import BackendError

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(BackendError, match="no dask scheduler answered at tcp://127.0.0.1:9"):
            run_study(load_study(path), RunOptions(results=str(tmp_path / "r"), backend="dask",
                                                   address="tcp://127.0.0.1:9", progress=False))
    assert not (tmp_path / "r").exists(), "nothing may be written when the cluster is unreachable"
