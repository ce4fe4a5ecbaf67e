"""The study's [after] command: `studies run reproduce` trains the published cell and then says, through the real
`python -m analysis compare`, whether the published mean was reproduced. Records here are synthetic
(analysis.testing, marked as such) and already complete, so nothing trains."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import speedrun
from analysis.reference import load_reference
from analysis.testing import make_record
from studies import load_study
from studies.cli import main
from test_studies_run import run_cli, write_study


def complete(results: Path, study_name: str, values: list[float]) -> None:
    """ok records for every run of the study, with these accuracies (fractions), in seed order."""
    study = load_study(study_name)
    runs = sorted(study.runs(), key=lambda r: r.point["seed"])
    assert len(runs) == len(values)
    folder = results / study.name / "runs"
    folder.mkdir(parents=True)
    for run, value in zip(runs, values):
        record = make_record(width=run.config.width, epochs=run.config.epochs, seed=run.config.seed,
                             ema_val_acc=value, study=study.name, config=run.config.to_dict(), run_id=run.run_id)
        (folder / f"{run.run_id}.json").write_text(json.dumps(record))


@pytest.mark.parametrize("shift, verdict", [(0.0, "reproduced: equivalent within ±0.2 points"),
                                            (-0.006, "not reproduced: the difference is significant")])
def test_reproduce_ends_with_the_verdict_in_one_command(tmp_path, shift, verdict):
    published = list(load_reference().values)  # the seed's seven values, as fractions
    complete(tmp_path, "reproduce", [v + shift for v in published])
    proc = run_cli("run", "reproduce", "--results", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 ok, 0 failed, 7 skipped (done)" in proc.stdout
    assert f"after the runs: python -m analysis compare {tmp_path / 'reproduce'}" in proc.stdout
    assert verdict in proc.stdout, proc.stdout


AFTER = '[after]\ncommand = ["python", "-c", "import sys; print(\'saw\', sys.argv[1]); sys.exit(3)"]\n'


def test_after_runs_once_every_run_is_ok_and_its_failure_exits_1(tmp_path):
    path = write_study(tmp_path, "tiny", {"seed": [0]})
    path.write_text(path.read_text() + AFTER)
    results = tmp_path / "results"
    dry = run_cli("run", str(path), "--results", str(results), "--dry-run", "--no-bench")
    assert dry.returncode == 0 and "once every run is ok: python -c" in dry.stdout
    assert f"saw {results}" not in dry.stdout, "a dry run runs nothing, [after] included"
    proc = run_cli("run", str(path), "--results", str(results), "--no-progress")
    assert f"saw {results / 'tiny'}" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 1 and "the study's [after] command exited 3; the runs are done" in proc.stderr
    assert len(list((results / "tiny" / "runs").glob("*.json"))) == 1, "the record stays"


def test_no_after_while_a_run_has_failed(tmp_path, monkeypatch, capfd):
    path = write_study(tmp_path, "broken", {"seed": [0, 1]})
    path.write_text(path.read_text() + AFTER)

    def failing_train(config, *, progress=None):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(speedrun, "train", failing_train)
    code = main(["run", str(path), "--results", str(tmp_path / "r"), "--jobs", "1", "--no-progress"])
    out = capfd.readouterr().out
    assert code == 1 and "0 ok, 2 failed" in out and "saw" not in out and "after the runs" not in out


def test_builtin_reproduce_names_analysis_compare():
    assert load_study("reproduce").after == ("python", "-m", "analysis", "compare")
