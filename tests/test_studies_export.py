"""`studies export` to MLflow, TensorBoard and W&B, offline, with real round trips: what is written is read back with
the tracker's own reader and compared with the records. Tests needing a tracker skip only where its extra is
not installed (CI installs mlflow and tensorboard)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from studies.cli import main
from studies.export import ExportError, ExportTally, export_folder, open_exporter
from studies.export.mapping import HISTORY_METRICS, report_view, run_view

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "results" / "cpu-scaling"  # a committed study with its report.md, report.json and figures
RECORDS = ("030e1b8bca14", "059a3227bb4c", "05ddc79213eb")  # three of its 36 records


@pytest.fixture
def study(tmp_path) -> Path:
    """A copy of three real cpu-scaling records plus the study's report, and one failed record."""
    folder = tmp_path / "cpu-scaling"
    (folder / "runs").mkdir(parents=True)
    for rid in RECORDS:
        shutil.copy(REAL / "runs" / f"{rid}.json", folder / "runs")
    for name in ("report.md", "report.json"):
        shutil.copy(REAL / name, folder)
    shutil.copytree(REAL / "figures", folder / "figures")
    failed = json.loads((REAL / "runs" / RECORDS[0]).with_suffix(".json").read_text())
    failed.update({k: None for k in ("ema_val_acc", "val_acc", "val_loss", "train_loss", "train_acc", "train_time_s",
                                     "wall_time_s", "train_flops")})  # a failed record holds no results
    failed.update(run_id="f00000000001", status="failed", error="RuntimeError: out of memory",
                  history=failed["history"][:2])
    (folder / "runs" / "f00000000001.json").write_text(json.dumps(failed))
    return folder


def records_of(folder: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in (folder / "runs").glob("*.json")}


def history_of(record: dict, key: str) -> list[tuple[int, float]]:
    return [(row["epoch"], row[key]) for row in record["history"] if row.get(key) is not None]


def test_mapping_of_a_record_and_of_the_report():
    record = json.loads((REAL / "runs" / f"{RECORDS[0]}.json").read_text())
    view = run_view(record, "cpu-scaling")
    assert view.name == "w16-e20-s2" and view.cell == "w16xe20" and not view.failed
    assert view.params["width"] == "16" and view.params["threads"] == "null" and view.params["tta"] == "true"
    assert view.summary["ema_val_acc"] == record["ema_val_acc"] and view.summary["train_flops"] == record["train_flops"]
    assert [e for e, _ in view.history] == list(range(1, 21)) and view.epochs == 20
    assert dict(view.history)[20]["ema_val_acc"] == record["ema_val_acc"]
    assert "ema_val_acc" not in dict(view.history)[1]  # not evaluated in epoch 1: absent, not NaN
    assert view.tags["git_commit"] == record["git_commit"] and view.tags["versions.torch"] == record["versions"]["torch"]
    assert run_view({**record, "status": "diverged"}, "s").failed
    report = report_view(REAL, "cpu-scaling")
    data = json.loads((REAL / "report.json").read_text())
    chosen = next(law for law in data["laws"] if law["chosen"])
    assert report.law == data["chosen_law"] == "interaction"
    for name, p in chosen["parameters"].items():
        assert report.metrics[f"law.{name}"] == p["estimate"]
        assert report.metrics[f"law.{name}.ci95_low"] == p["ci95"][0]
    assert {p.name for p in report.files} >= {"report.md", "report.json", "accuracy_vs_epochs.png"}


def test_a_missing_extra_names_the_pip_command(monkeypatch, capsys, study):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with pytest.raises(ExportError, match=r'pip install -e "\.\[mlflow\]"'):
        open_exporter("mlflow")
    assert main(["export", str(study), "--to", "mlflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and '".[mlflow]"' in err


# -- MLflow


def test_mlflow_round_trip_once_per_record_and_again_without_duplicates(study, tmp_path, capsys):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["export", str(study), "--to", "mlflow", "--uri", uri]) == 0
    assert "cpu-scaling: 5 created, 0 updated, 0 skipped" in capsys.readouterr().out  # 4 records + the report
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cpu-scaling")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'record'")
    records = records_of(study)
    assert sorted(r.data.tags["run_id"] for r in runs) == sorted(records)
    for run in runs:
        record = records[run.data.tags["run_id"]]
        assert run.data.params == {k: v if isinstance(v, str) else json.dumps(v) for k, v in record["config"].items()}
        assert run.data.tags["cell"] == f"w{record['config']['width']}xe{record['config']['epochs']}"
        assert run.data.tags["git_commit"] == record["git_commit"]
        for key in HISTORY_METRICS:
            got = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(got) == history_of(record, key), key
        if record["status"] == "ok":
            assert run.info.status == "FINISHED"
            assert run.data.metrics["ema_val_acc"] == record["ema_val_acc"]  # the latest value: the final one
            assert run.data.metrics["train_flops"] == record["train_flops"]
        else:
            assert run.info.status == "FAILED" and run.data.tags["error"] == record["error"]
    [report] = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'report'")
    artifacts = {a.path for a in client.list_artifacts(report.info.run_id)}
    assert {"report.md", "report.json", "figures"} <= artifacts
    assert len(client.list_artifacts(report.info.run_id, "figures")) == len(list((study / "figures").glob("*.png")))
    assert report.data.metrics["law.alpha"] == pytest.approx(0.5891153725742894)
    assert report.data.params["chosen_law"] == "interaction"

    assert main(["export", str(study), "--to", "mlflow", "--uri", uri]) == 0  # again: nothing new
    assert "0 created, 0 updated, 5 skipped" in capsys.readouterr().out
    path = study / "runs" / f"{RECORDS[1]}.json"  # a record that changed (rerun): updated in place of the old
    path.write_text(json.dumps({**json.loads(path.read_text()), "ema_val_acc": 0.5}))
    assert main(["export", str(study), "--to", "mlflow", "--uri", uri]) == 0
    assert "0 created, 1 updated, 4 skipped" in capsys.readouterr().out
    runs = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'record'")
    assert len(runs) == 4 and len({r.data.tags["run_id"] for r in runs}) == 4
    assert next(r for r in runs if r.data.tags["run_id"] == RECORDS[1]).data.metrics["ema_val_acc"] == 0.5


# -- TensorBoard


def test_tensorboard_round_trip_scalars_hparams_and_report(study, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    logdir = tmp_path / "tb"
    assert main(["export", str(study), "--to", "tensorboard", "--logdir", str(logdir)]) == 0
    assert "5 created" in capsys.readouterr().out
    records = records_of(study)
    folders = {p.name.rsplit("-", 1)[1]: p for p in (logdir / "cpu-scaling").iterdir() if p.name != "report"}
    assert sorted(folders) == sorted(records)
    for rid, folder in folders.items():
        record = records[rid]
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        for key in HISTORY_METRICS:
            expected = history_of(record, key)
            got = [(e.step, e.value) for e in acc.Scalars(key)] if expected else []
            assert [e for e, _ in got] == [e for e, _ in expected], key
            assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6), key  # float32 in events
        if record["status"] == "ok":
            [final] = acc.Scalars("summary/ema_val_acc")
            assert final.step == record["config"]["epochs"] and final.value == pytest.approx(record["ema_val_acc"])
        end = acc.PluginTagToContent("hparams")["_hparams_/session_end_info"]
        status = plugin_data_pb2.HParamsPluginData.FromString(end).session_end_info.status
        assert status == (api_pb2.STATUS_SUCCESS if record["status"] == "ok" else api_pb2.STATUS_FAILURE)
        start = plugin_data_pb2.HParamsPluginData.FromString(
            acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
        assert start.hparams["width"].number_value == record["config"]["width"]
    report = EventAccumulator(str(logdir / "cpu-scaling" / "report"), size_guidance={"images": 0, "tensors": 0})
    report.Reload()
    assert len(report.Tags()["images"]) == len(list((study / "figures").glob("*.png")))
    [alpha] = report.Scalars("law.alpha")
    assert alpha.value == pytest.approx(0.5891153725742894, rel=1e-6)
    text = report.Tensors("report")[0].tensor_proto.string_val[0].decode()
    assert text == (study / "report.md").read_text()

    assert main(["export", str(study), "--to", "tensorboard", "--logdir", str(logdir)]) == 0
    assert "0 created, 0 updated, 5 skipped" in capsys.readouterr().out
    assert all(len(list(f.glob("events.out.tfevents.*"))) == 1 for f in folders.values())


# -- W&B


class FakeRun:
    def __init__(self, calls, kwargs):
        self.calls, self.kwargs, self.summary = calls, kwargs, {}
        calls.append(("init", kwargs))

    def define_metric(self, name, **kw):
        self.calls.append(("define_metric", name, kw))

    def log(self, data):
        self.calls.append(("log", data))

    def log_artifact(self, artifact):
        self.calls.append(("artifact", artifact.files))

    def finish(self, exit_code=0):
        self.calls.append(("finish", self.kwargs["id"], exit_code, dict(self.summary)))


def fake_wandb(calls):
    import types

    class Artifact:
        def __init__(self, name, type):
            self.files = []

        def add_file(self, path, name=None):
            self.files.append(name)

    module = types.ModuleType("wandb")
    module.init = lambda **kw: FakeRun(calls, kw)
    module.Settings = lambda **kw: kw
    module.Artifact = Artifact
    module.Image = lambda path: ("image", Path(path).name)
    module.Api = lambda: pytest.fail("offline: no API calls")
    return module


def test_wandb_call_mapping_with_a_fake_module(study, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    monkeypatch.setenv("WANDB_MODE", "offline")
    exporter = open_exporter("wandb", project="p", wandb_dir=str(tmp_path))
    tally = ExportTally(exporter.where)
    export_folder(exporter, study, tally, say=lambda line: None)
    assert len(tally.created) == 5 and not tally.failed
    inits = [c[1] for c in calls if c[0] == "init"]
    records = records_of(study)
    assert sorted(i["id"] for i in inits if i["job_type"] == "train") == sorted(f"cpu-scaling-{r}" for r in records)
    assert all(i["resume"] == "allow" and i["group"] == "cpu-scaling" and i["project"] == "p" for i in inits)
    finishes = {c[1]: c for c in calls if c[0] == "finish"}
    for rid, record in records.items():
        init = next(i for i in inits if i["id"] == f"cpu-scaling-{rid}")
        assert init["tags"][0] == f"w{record['config']['width']}xe{record['config']['epochs']}"
        assert init["config"]["width"] == record["config"]["width"]
        assert init["config"]["record"]["git_commit"] == record["git_commit"]
        _, _, exit_code, summary = finishes[f"cpu-scaling-{rid}"]
        assert exit_code == (0 if record["status"] == "ok" else 1)
        if record["status"] == "ok":
            assert summary["ema_val_acc"] == record["ema_val_acc"] and summary["train_time_s"] == record["train_time_s"]
    assert ("define_metric", "*", {"step_metric": "epoch"}) in calls
    logged = [c[1] for c in calls if c[0] == "log" and "epoch" in c[1]]
    assert len(logged) == sum(len(r["history"]) for r in records.values())
    report = next(i for i in inits if i["job_type"] == "report")
    assert report["id"] == "cpu-scaling-report" and report["config"]["chosen_law"] == "interaction"
    artifact = next(c[1] for c in calls if c[0] == "artifact")
    assert {"report.md", "report.json", "figures/parity.png"} <= set(artifact)
    assert finishes["cpu-scaling-report"][3]["law.alpha"] == pytest.approx(0.5891153725742894)


def test_wandb_offline_writes_one_run_folder_per_record(study, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "w"
    assert main(["export", str(study), "--to", "wandb", "--project", "p", "--wandb-dir", str(out), "--no-report"]) == 0
    folders = sorted(p.name for p in (out / "wandb").glob("offline-run-*"))
    assert len(folders) == 4
    for rid in records_of(study):
        assert sum(f.endswith(f"-cpu-scaling-{rid}") for f in folders) == 1, (rid, folders)
