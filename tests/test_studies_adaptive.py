"""Adaptive seeds: the decisions (from records alone), and the scheduler's guarantees kept — same choices after a
real SIGKILL and restart, each run once with two schedulers, dask as well as loky — plus the law target through
a stand-in predictor command."""
from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import speedrun
from studies import RunOptions, load_study, run_study
from studies.adaptive import CellState, decide, replay
from studies.cli import main
from studies.spec import Adaptive
from studies.store import StudyPaths
from studies.studyfile import StudyError
from test_studies_run import records, write_study

ROOT = Path(__file__).resolve().parents[1]
GRID = {"width": [4, 8], "epochs": [1, 2], "seed": [0, 1]}
FIXED = {"train_subset": 256, "test_subset": 128, "batch_size": 64}


def cell(values, seeds=None, flops=100, **where):
    return CellState(where, tuple(seeds or range(len(values))), tuple(values), flops)


def test_se_target_adds_seeds_worst_cell_first_within_caps_and_budget():
    """The mechanics, with each cell's own sd (prior_df=0)."""
    cells = [cell([80.0, 80.1], width=4), cell([80.0, 81.0, 79.0], width=8), cell([70.0, 70.1, 70.2], width=16)]
    se = [c.se for c in cells]
    assert se[1] == pytest.approx(statistics.stdev([80, 81, 79]) / math.sqrt(3)) and se[0] < 0.1 and se[2] < 0.1
    own = dict(prior_df=0)
    policy = Adaptive(min_seeds=2, max_seeds=5, batch=1, target_se=0.1)
    assert decide(policy, cells, 0, None, **own).add == (1,), "the only cell above the target"
    # A batch of three: each pick counts as if its seed came out with the cell's spread (sd 1: se 1/sqrt(4) and
    # 1/sqrt(5) stay above 0.1), until max_seeds stops the cell.
    assert decide(Adaptive(min_seeds=2, max_seeds=10, batch=3, target_se=0.1), cells, 0, None, **own).add == (1, 1, 1)
    assert decide(Adaptive(min_seeds=2, max_seeds=4, batch=3, target_se=0.1), cells, 0, None, **own).add == (1,)
    two = [cell([80.0, 80.4], width=4), cell([80.0, 81.0, 79.0], width=8)]  # se 0.2 and 0.577
    assert decide(Adaptive(min_seeds=2, max_seeds=10, batch=2, target_se=0.1), two, 0, None, **own).add == (1, 1), \
        "1/sqrt(4) = 0.5 is still above 0.2"
    capped = [cell([80.0, 81.0, 79.0, 80.5, 79.5], width=8)]
    stop = decide(policy, capped, 0, None)
    assert stop.add == () and stop.stop.startswith("max_seeds = 5 reached in every cell still above the target")
    broke = decide(Adaptive(min_seeds=2, max_seeds=5, target_se=0.1, budget_flops=1000), cells, 950, None)
    assert broke.add == () and broke.stop.startswith("budget: one more seed would take the study past budget_flops")
    met = decide(Adaptive(min_seeds=2, target_se=1.0), cells, 0, None)
    assert met.add == () and met.stop == "target met: every cell's standard error is at most 1 points"
    lonely = [cell([80.0], width=4), cell([80.0, 81.0, 79.0], width=8)]  # one ok run (the other diverged)
    assert decide(policy, lonely, 0, None).add == (0,), "a cell without a standard error yet comes first"


def test_a_cell_whose_few_seeds_agree_by_chance_borrows_the_pooled_spread():
    from studies.adaptive import PRIOR_DF, shrunk_sds

    lucky = cell([80.0, 80.01, 80.02], width=4)
    noisy = cell([80.0, 81.0, 79.0, 80.5, 79.5, 80.2, 79.8, 80.0], width=8)
    pooled = (2 * lucky.sd ** 2 + 7 * noisy.sd ** 2) / 9  # variance, weighted by degrees of freedom
    expected = [math.sqrt((2 * lucky.sd ** 2 + PRIOR_DF * pooled) / (2 + PRIOR_DF)),
                math.sqrt((7 * noisy.sd ** 2 + PRIOR_DF * pooled) / (7 + PRIOR_DF))]
    assert shrunk_sds([lucky, noisy], noise="constant") == pytest.approx(expected)
    policy = Adaptive(min_seeds=3, max_seeds=10, target_se=0.2)
    assert lucky.se < 0.2 and decide(policy, [lucky, noisy], 0, None, prior_df=0).add == (1,)
    assert decide(policy, [lucky, noisy], 0, None).add == (0,), \
        "with the pooled spread the lucky cell's 3 seeds are not enough: it is the worst"


def test_proportional_noise_pools_each_cells_sd_relative_to_its_error():
    """Seed noise grows with the error (analysis's model; its report tests it): an accurate cell borrows the pooled
    *relative* spread, not the inaccurate cells' spread in points, so it is not given seeds it does not need."""
    from studies.adaptive import PRIOR_DF, shrunk_sds

    accurate = cell([94.0, 94.1, 93.9], width=64)  # error 6 points, sd 0.1: 1.7% of the error
    rough = cell([74.0, 75.0, 76.0, 73.0, 77.0], width=8)  # error 25 points, sd 1.58: 6.3% of the error
    rel = [accurate.sd / 6.0, rough.sd / 25.0]
    pooled = (2 * rel[0] ** 2 + 4 * rel[1] ** 2) / 6
    expected = [6.0 * math.sqrt((2 * rel[0] ** 2 + PRIOR_DF * pooled) / (2 + PRIOR_DF)),
                25.0 * math.sqrt((4 * rel[1] ** 2 + PRIOR_DF * pooled) / (4 + PRIOR_DF))]
    assert shrunk_sds([accurate, rough]) == pytest.approx(expected)
    constant = shrunk_sds([accurate, rough], noise="constant")
    assert constant[0] > 3 * expected[0], "pooled in points, the rough cell's spread swamps the accurate one's"
    cells = [accurate, rough]
    proportional = decide(Adaptive(min_seeds=3, max_seeds=10, batch=3, target_se=0.2, noise="proportional"), cells,
                          0, None)
    assert proportional.add == (1, 1, 1) and "pooled as proportional" in proportional.measure
    assert 0 in decide(Adaptive(min_seeds=3, max_seeds=10, batch=3, target_se=0.2, noise="constant"), cells, 0,
                       None).add


def test_auto_noise_takes_the_model_the_cells_spread_favours():
    """noise = "auto" (the default) compares the two models' likelihoods of the cells' spread: over cells from 73%
    to 94% accuracy (cpu-scaling's means), four seeds each, it finds proportional noise when the runs were drawn
    so, and constant noise when they were drawn so, nearly always; and it then decides as that model would."""
    import numpy as np

    from studies.adaptive import choose_noise, noise_loglik

    means = [73.4, 82.2, 85.9, 87.6, 81.4, 87.3, 90.5, 92.0, 85.2, 90.5, 92.8, 93.8]
    right = {"proportional": 0, "constant": 0}
    for seed in range(20):
        rng = np.random.default_rng(seed)
        for truth in right:
            sds = [0.025 * (100 - m) if truth == "proportional" else 0.4 for m in means]
            cells = [cell(list(m + sd * rng.standard_normal(4)), width=i) for i, (m, sd) in enumerate(zip(means, sds))]
            chosen, margin = choose_noise(cells, "auto")
            assert margin == pytest.approx(noise_loglik(cells, "proportional") - noise_loglik(cells, "constant"))
            right[truth] += chosen == truth
            auto = decide(Adaptive(min_seeds=3, target_se=0.1, batch=4), cells, 0, None)
            fixed = decide(Adaptive(min_seeds=3, target_se=0.1, batch=4, noise=chosen), cells, 0, None)
            assert auto.add == fixed.add and f"pooled as {chosen}, chosen by noise = auto" in auto.measure
    assert right["proportional"] >= 18 and right["constant"] >= 18, right
    assert choose_noise([cell([80.0, 80.5, 79.5], width=1)], "auto")[0] == "constant", "one cell: a tie"
    assert choose_noise([], "proportional") == ("proportional", pytest.approx(float("nan"), nan_ok=True))


def test_adaptive_table_is_checked_with_every_problem(tmp_path):
    path = write_study(tmp_path, "bad", {"width": [4], "seed": [0]})
    path.write_text(path.read_text() + "[adaptive]\nmin_seeds = 1\ntarget_se = 0.1\ntarget_halfwidth = 0.2\n"
                    "at = { depth = 3 }\nnope = 1\nnoise = \"loud\"\n")
    with pytest.raises(StudyError) as info:
        load_study(path)
    text = "\n".join(info.value.problems)
    for expected in ("adaptive.nope: unknown key", "adaptive.min_seeds: is 1; expected an integer >= 2",
                     "adaptive.target_se: give exactly one target", "adaptive.at: is {'depth': 3}",
                     "adaptive.noise: is 'loud'; expected one of 'auto', 'proportional', 'constant'"):
        assert expected in text, text
    law = write_study(tmp_path, "law", {"width": [4], "seed": [0]})
    law.write_text(law.read_text() + "[adaptive]\ntarget_halfwidth = 0.2\nat = { width = 8 }\nnoise = \"constant\"\n")
    with pytest.raises(StudyError, match="adaptive.noise: only applies to target_se"):
        load_study(law)
    law.write_text(law.read_text().replace("target_halfwidth = 0.2\nat = { width = 8 }", "target_se = 0.1"))
    assert load_study(law).adaptive.noise == "constant"


def adaptive_study(folder: Path, name: str, extra_runs: int = 3) -> Path:
    """2 x 2 cells, 2 seeds first, at most 5; a target no cell reaches and a FLOP budget for `extra_runs` more
    runs of the costliest cell, so which cells get the extra seeds depends on the records' spread."""
    path = write_study(folder, name, GRID, FIXED)
    study = load_study(path)
    first = sum(speedrun.train_flops(r.config) for r in study.runs())
    most = max(speedrun.train_flops(r.config) for r in study.runs())
    path.write_text(path.read_text() + f"[adaptive]\nmin_seeds = 2\nmax_seeds = 5\ntarget_se = 0.001\n"
                                       f"budget_flops = {first + extra_runs * most + 1}\n")
    return path


def chosen(results: Path, path: Path) -> dict[str, float]:
    study = load_study(path)
    state = replay(study, StudyPaths.of(results, study.name))
    assert state.stopped, "the policy must have finished"
    recs = records(results / study.name / "runs")
    assert set(recs) == {r.run_id for r in state.chosen}, "no record outside the runs the rounds chose"
    return {rid: rec["ema_val_acc"] for rid, rec in recs.items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adaptive-reference")
    path = adaptive_study(folder, "seeds")
    summary = run_study(load_study(path), RunOptions(results=str(folder / "r"), jobs=1, progress=False, adaptive=True))
    assert summary.exit_code == 0 and summary.adaptive.startswith("stopped after round"), summary
    assert "budget" in summary.adaptive, summary.adaptive
    return chosen(folder / "r", path)


def start(path: Path, results: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "studies", "run", str(path), "--results", str(results),
                             "--adaptive", "--no-progress", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_adaptive_spends_extra_seeds_unevenly_and_a_rerun_does_nothing(uninterrupted, tmp_path, capsys):
    assert 8 < len(uninterrupted) <= 8 + 3 * 4, "min_seeds everywhere, then some extra seeds within the budget"
    path = adaptive_study(tmp_path, "seeds")
    results = tmp_path / "r"
    assert main(["run", str(path), "--results", str(results), "--adaptive", "--no-progress"]) == 0
    assert chosen(results, path) == uninterrupted, "same records, same choices"
    assert main(["run", str(path), "--results", str(results), "--adaptive", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"0 ok, 0 failed, {len(uninterrupted)} skipped" in out and "adaptive: stopped after round" in out
    assert main(["status", str(path), "--results", str(results), "--adaptive"]) == 0
    assert "adaptive: stopped after round" in capsys.readouterr().out
    assert main(["status", str(path), "--results", str(results)]) == 0
    assert "`status --adaptive` shows its rounds" in capsys.readouterr().out


def test_a_killed_adaptive_study_resumes_with_the_same_choices(uninterrupted, tmp_path):
    path = adaptive_study(tmp_path, "seeds")
    results = tmp_path / "r"
    runs = results / "seeds" / "runs"
    proc = start(path, results, "--jobs", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(runs.glob("*.json")) if runs.is_dir()
                                                                        else []) < 9:
        time.sleep(0.05)  # past round 0: the policy has started choosing
    assert proc.poll() is None, "the study finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert 9 <= len(list(runs.glob("*.json"))) < len(uninterrupted) or len(uninterrupted) == 9
    again = start(path, results, "--jobs", "2")
    out, err = again.communicate(timeout=240)
    assert again.returncode == 0, err
    assert chosen(results, path) == uninterrupted, "a restart must make the same choices"
    for log in (results / "seeds" / "logs").glob("*.log"):
        # At most once: the kill comes as the ninth record appears, so it can land after a record is written and
        # before its log's "# ok" line (the record is the contract; the log is the console's copy).
        assert log.read_text().count("# ok") <= 1, f"run {log.stem} completed more than once"
        assert json.loads((runs / f"{log.stem}.json").read_text())["status"] == "ok"


def test_two_adaptive_schedulers_run_each_run_once(uninterrupted, tmp_path):
    path = adaptive_study(tmp_path, "seeds")
    results = tmp_path / "r"
    procs = [start(path, results, "--jobs", "1"), start(path, results, "--jobs", "2")]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert chosen(results, path) == uninterrupted
    logs = [p.read_text() for p in (results / "seeds" / "logs").glob("*.log")]
    assert len(logs) == len(uninterrupted) and all(text.count("# attempt ") == 1 for text in logs), \
        "every chosen run executed exactly once"


def test_adaptive_on_dask(uninterrupted, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    path = adaptive_study(tmp_path, "seeds")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        summary = run_study(load_study(path), RunOptions(results=str(tmp_path / "r"), backend="dask",
                                                         address=c.scheduler_address, progress=False, adaptive=True))
    assert summary.exit_code == 0, summary
    assert chosen(tmp_path / "r", path) == uninterrupted


FAKE_PREDICTOR = '''
"""A stand-in for `python -m analysis predict`: same arguments and JSON contract, a toy law (a weighted mean
of cell means, weights falling with distance from the asked cell) whose interval shrinks as seeds are added."""
import argparse, json, math, pathlib, statistics, sys
p = argparse.ArgumentParser()
p.add_argument("dir"); p.add_argument("--width", type=float); p.add_argument("--epochs", type=float)
p.add_argument("--format"); p.add_argument("--mode", default="fit")
a = p.parse_args()
if a.mode == "fail":
    print("error: the joint law needs at least 3 epochs values per width", file=sys.stderr); sys.exit(2)
cells = {}
for f in sorted(pathlib.Path(a.dir).rglob("*.json")):
    r = json.loads(f.read_text())
    if r.get("status") == "ok":
        cells.setdefault((r["config"]["width"], r["config"]["epochs"]), []).append(r["ema_val_acc"])
var = statistics.fmean(statistics.variance(v) for v in cells.values() if len(v) > 1)
w = {c: 1 / (1 + abs(math.log2(c[0] / a.width)) + abs(math.log2(c[1] / a.epochs))) for c in cells}
pred = sum(w[c] * statistics.fmean(v) for c, v in cells.items()) / sum(w.values())
se = math.sqrt(sum(w[c] ** 2 * var / len(v) for c, v in cells.items())) / sum(w.values())
print(json.dumps({"study": pathlib.Path(a.dir).name, "width": a.width, "epochs": a.epochs, "law": "toy",
                  "predicted_acc": pred, "se_pred": se, "ci95": [pred - 1.96 * se, pred + 1.96 * se],
                  "pi95": [pred - 1.96 * math.sqrt(se ** 2 + var), pred + 1.96 * math.sqrt(se ** 2 + var)],
                  "seed_sd": math.sqrt(var), "n_runs": sum(map(len, cells.values())), "n_cells": len(cells),
                  "provisional": False, "extrapolated": False,
                  "not_identified": ["b"] if a.mode == "unidentified" else []}))
'''


def law_study(folder: Path, mode: str = "fit") -> Path:
    script = folder / "fake_predict.py"
    script.write_text(FAKE_PREDICTOR)
    path = write_study(folder, "law", GRID, FIXED)
    path.write_text(path.read_text() + f"[adaptive]\nmin_seeds = 2\nmax_seeds = 4\ntarget_halfwidth = 0.5\n"
                                       f"at = {{ width = 16, epochs = 2 }}\n"
                                       f"predictor = [\"python\", \"{script}\", \"--mode\", \"{mode}\"]\n")
    return path


def test_law_target_through_a_stand_in_predictor(tmp_path, capsys):
    from studies.rounds import predictor_for

    path = law_study(tmp_path)
    results = tmp_path / "r"
    assert main(["run", str(path), "--results", str(results), "--adaptive", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "adaptive: stopped after round" in out.out and "ci95 half-width" in out.out, out.out
    assert "adaptive round 1:" in out.err, "seeds were added before the policy stopped"
    study = load_study(path)
    paths = StudyPaths.of(results, "law")
    predictor = predictor_for(study, paths)
    state = replay(study, paths, predictor)
    assert state.stopped and predictor.calls == 0, "a replay answers from the cache: the same choices, no refit"
    assert {r.run_id for r in state.chosen} == set(records(paths.runs))
    assert list(paths.adaptive.glob("predict-*.json")), "answers are cached beside the runs"
    assert not any("fantasy" in json.dumps(r) for r in records(paths.runs).values()), "fantasy records stay out"


@pytest.mark.parametrize("mode, words", [("fail", "the law cannot be fitted yet: error: the joint law needs"),
                                         ("unidentified", "the law's b are not identified by this grid")])
def test_a_law_that_cannot_answer_stops_the_policy_with_exit_1(tmp_path, capsys, mode, words):
    path = law_study(tmp_path, mode)
    code = main(["run", str(path), "--results", str(tmp_path / "r"), "--adaptive", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1 and words in out, out
    assert "8 ok" in out, "round 0 (min_seeds everywhere) ran; nothing after it"


def test_adaptive_needs_an_adaptive_table(tmp_path, capsys):
    path = write_study(tmp_path, "plain", {"seed": [0]})
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--adaptive"]) == 2
    assert "has no [adaptive] table; add one with a target (see studies/README.md)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
