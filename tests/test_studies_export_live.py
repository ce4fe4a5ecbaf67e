"""`studies run --export`: the scheduler exports each record as it lands, and a failing or unreachable tracker never
stops the study or changes its exit code (tiny real runs on synthetic data)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studies import RunOptions, load_study, run_study
from studies.export import live as live_module
from studies.export.live import LiveExport
from test_studies_run import write_study  # the tiny-study helper of the run tests

ROOT = Path(__file__).resolve().parents[1]
GRID = {"width": [2, 4], "epochs": [2], "seed": [0]}


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "studies", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def test_each_record_reaches_mlflow_as_it_lands(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    live = LiveExport("mlflow", {"uri": uri}, io.StringIO())
    client = MlflowClient(uri)
    seen = []  # at each landing: (records on disk, runs in MLflow right after the export)

    def on_record(study_dir: Path, run_id: str) -> None:
        live.on_record(study_dir, run_id)
        exp = client.get_experiment_by_name("live")
        seen.append((len(list((study_dir / "runs").glob("*.json"))), len(client.search_runs([exp.experiment_id]))))

    study = load_study(write_study(tmp_path, "live", GRID))
    summary = run_study(study, RunOptions(results=str(tmp_path / "results"), jobs=1, progress=False,
                                          on_record=on_record), err=io.StringIO())
    assert summary.ok == 2 and summary.exit_code == 0
    assert seen == [(1, 1), (2, 2)], "each record must be in MLflow before the next run lands"
    assert live.finish() == [f"export: MLflow at {uri}: 2 created, 0 updated, 0 skipped (unchanged)"]
    runs = client.search_runs([client.get_experiment_by_name("live").experiment_id])
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results" / "live" / "runs").glob("*.json")}
    assert {r.data.tags["run_id"]: r.data.metrics["ema_val_acc"] for r in runs} == \
        {rid: r["ema_val_acc"] for rid, r in records.items()}


def test_run_export_mlflow_through_the_cli(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write_study(tmp_path, "cli-live", GRID)
    proc = run_cli("run", str(path), "--results", str(tmp_path / "results"), "--no-progress", "--export", "mlflow",
                   "--uri", uri)
    assert proc.returncode == 0, proc.stderr
    assert f"export: MLflow at {uri}: 2 created" in proc.stdout, proc.stdout
    client = MlflowClient(uri)
    assert len(client.search_runs([client.get_experiment_by_name("cli-live").experiment_id])) == 2


def test_an_unreachable_tracker_warns_and_the_study_still_succeeds(tmp_path):
    pytest.importorskip("mlflow")
    path = write_study(tmp_path, "offline", GRID)
    proc = run_cli("run", str(path), "--results", str(tmp_path / "results"), "--no-progress", "--export", "mlflow",
                   "--uri", "http://127.0.0.1:9", env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert proc.returncode == 0, proc.stderr
    assert "2 ok, 0 failed" in proc.stdout
    ids = sorted(p.stem for p in (tmp_path / "results" / "offline" / "runs").glob("*.json"))
    warning = next(line for line in proc.stderr.splitlines() if "not exported" in line)
    assert warning.startswith("warning: 2 record(s) not exported to mlflow") and all(i in warning for i in ids)
    assert "python -m studies export" in warning and "--uri http://127.0.0.1:9" in warning


class _Refusing:
    where = "a tracker that refuses every run"

    def __init__(self):
        self.calls = 0

    def export_run(self, view):
        self.calls += 1
        raise ConnectionError("tracker went away")

    def close(self):
        pass


def test_a_tracker_failing_mid_study_is_given_up_once_and_names_every_skipped_record(tmp_path, monkeypatch):
    refusing = _Refusing()
    monkeypatch.setattr(live_module, "open_exporter", lambda name, **options: refusing)
    err = io.StringIO()
    live = LiveExport("mlflow", {"uri": "x"}, err)
    study = load_study(write_study(tmp_path, "flaky", GRID))
    summary = run_study(study, RunOptions(results=str(tmp_path / "results"), jobs=1, progress=False,
                                          on_record=live.on_record), err=io.StringIO())
    assert summary.ok == 2 and summary.exit_code == 0
    assert refusing.calls == 1, "after a failure the tracker is not tried again in this study"
    assert "ConnectionError: tracker went away" in err.getvalue()
    [warning] = live.finish()
    ids = sorted(p.stem for p in (tmp_path / "results" / "flaky" / "runs").glob("*.json"))
    assert warning.startswith("warning: 2 record(s) not exported") and all(i in warning for i in ids)
