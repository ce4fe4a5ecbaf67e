"""Cost before launch: FLOPs done and left, and a wall-time range with its rate's source — this study's records,
else records under the results root, else `speedrun bench` — checked against a real small CPU study."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest
import torch

import speedrun
from studies import RunOptions, load_study, run_study, study_status
from studies.cli import main
from studies.devices import Slot
from studies.estimate import study_cost
from studies.fsutil import host
from speedrun.runtime import device_name
from test_studies_run import write_study

CPU = [Slot(0, None, None)]  # one run at a time in this process, as `--jobs 1` on this machine


def test_estimate_of_the_second_half_is_within_25_percent_of_its_actual_time(tmp_path):
    """Run half the seeds of a small real study, estimate the other half from those records, run it, compare.
    The machine's background load is the same for both halves."""
    fixed = {"train_subset": 1024, "test_subset": 256, "batch_size": 128}
    path = write_study(tmp_path, "halves", {"width": [4, 8], "epochs": [1, 2], "seed": [0, 1, 2, 3]}, fixed)
    study = load_study(path)
    results = str(tmp_path / "r")
    # Warm this process first (synthetic data, lazy kernels): the estimate leaves worker start-up out by design.
    speedrun.train(study.runs()[0].config.replace(seed=99))
    first = dataclasses.replace(study, grid={**study.grid, "seed": (0, 1)})
    assert run_study(first, RunOptions(results=results, jobs=1, progress=False)).ok == 8

    cost = study_status(study, results, slots=CPU).cost
    assert cost.runs_left == 8 and cost.seconds is not None, cost
    assert cost.flops_left == sum(speedrun.train_flops(r.config) for r in study.runs() if r.config.seed >= 2)
    assert all("this study's records" in s and "runs like these" in s for s in cost.sources), cost.sources
    t0 = time.perf_counter()
    assert run_study(study, RunOptions(results=results, jobs=1, progress=False)).ok == 8
    actual = time.perf_counter() - t0
    lo, hi = cost.seconds
    middle = (lo * hi) ** 0.5
    assert abs(middle - actual) <= 0.25 * actual, f"estimated {lo:.1f}-{hi:.1f} s (middle {middle:.1f}), took {actual:.1f} s"


def cpu_name(threads: int) -> str:
    """This machine's CPU as speedrun names it in the records of runs with `threads` threads."""
    return device_name(torch.device("cpu"), threads)


def fake_record(config, *, wall: float, train: float, threads: int, study: str, name: str | None = None) -> dict:
    flops = speedrun.train_flops(config)
    return dict(run_id=speedrun.run_id(config), study=study, status="ok", config=config.to_dict(),
                device="cpu", device_name=name or cpu_name(threads), host=host(), threads=threads,
                train_flops=flops, wall_time_s=wall, train_time_s=train)


def write_records(folder, records) -> None:
    folder.mkdir(parents=True)
    for rec in records:
        (folder / f"{rec['run_id']}.json").write_text(json.dumps(rec))


def test_rates_fall_back_to_records_under_the_results_root(tmp_path):
    path = write_study(tmp_path, "fresh", {"width": [4], "seed": [0, 1, 2]}, {"threads": 3})
    study = load_study(path)
    runs = study.runs()
    # Another study's runs like these (only the seed differs) on this host's CPU with 3 threads: 2 and 4 s each.
    other = [r.config.replace(seed=10 + i) for i, r in enumerate(runs[:2])]
    write_records(tmp_path / "r" / "older" / "runs",
                  [fake_record(c, wall=w, train=w / 2, threads=3, study="older") for c, w in zip(other, (2.0, 4.0))])
    flops = [speedrun.train_flops(r.config) for r in runs]
    rates = [f / w for f, w in zip((speedrun.train_flops(c) for c in other), (2.0, 4.0))]
    cost = study_cost(runs, [], CPU, study_records=[], results_root=tmp_path / "r")
    assert cost.devices == (cpu_name(3),) and cost.runs_left == 3
    assert cost.seconds == pytest.approx((sum(flops) / max(rates), sum(flops) / min(rates)))
    (source,) = cost.sources
    assert source.startswith(f"records under {tmp_path / 'r'} on {cpu_name(3)}, runs like these")
    # Two at a time: between max(sum/2, longest) and sum/2 + longest/2 (greedy list scheduling).
    two = study_cost(runs, [], [Slot(0, None, 3), Slot(1, None, 3)], study_records=[], results_root=tmp_path / "r")
    slow = [f / min(rates) for f in flops]
    assert two.seconds[1] == pytest.approx(sum(slow) / 2 + max(slow) / 2) and two.parallel == 2

    # Runs with other evaluation settings only share kernels: their training-loop rate, slowed by their own
    # wall/train ratio (2.0 here), since this study has no record of its own yet.
    unlike = [c.replace(test_subset=32) for c in other]
    write_records(tmp_path / "r2" / "x" / "runs",
                  [fake_record(c, wall=w, train=w / 2, threads=3, study="x") for c, w in zip(unlike, (2.0, 4.0))])
    loose = study_cost(runs, [], CPU, study_records=[], results_root=tmp_path / "r2")
    train_rates = [2 * r for r in rates]
    assert loose.seconds == pytest.approx((sum(flops) / (max(train_rates) / 2), sum(flops) / (min(train_rates) / 2)))
    assert "same width/batch_size/precision/compile/cuda_graph: training loops" in loose.sources[0]


def test_the_cpu_is_named_by_its_thread_count_not_by_a_records_threads_field(tmp_path):
    """Records whose `threads` field disagrees with their device_name (written while the count was changing)
    must not name this CPU at another count: the target is the name speedrun gives runs at that count."""
    path = write_study(tmp_path, "named", {"width": [4], "seed": [0, 1]}, {"threads": 2})
    runs = load_study(path).runs()
    others = [r.config.replace(seed=10 + i) for i, r in enumerate(runs)]
    stale = [fake_record(c, wall=2.0, train=1.0, threads=2, study="old", name=cpu_name(1)) for c in others]
    write_records(tmp_path / "r" / "old" / "runs", stale)
    cost = study_cost(runs, [], CPU, study_records=[], results_root=tmp_path / "r")
    assert cost.devices == ("this CPU with 2 threads",), cost.devices  # not cpu_name(1), the stale records' name
    assert cost.seconds is None  # no record of this CPU at 2 threads: no rate without a bench


def test_without_records_the_dry_run_benches_and_says_so(tmp_path, capsys):
    path = write_study(tmp_path, "bare", {"seed": [0, 1]}, {"threads": 1})
    results = str(tmp_path / "r")
    assert main(["run", str(path), "--results", results, "--dry-run", "--no-bench"]) == 0
    out = capsys.readouterr().out
    assert "estimated time left: unknown — no rate for width 2 on this CPU with 1 threads" in out
    assert main(["run", str(path), "--results", results, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "estimated time left: " in out and "unknown" not in out, out
    assert "rate: speedrun bench on " in out and "(1 threads): 1 of 1 network(s) timed within" in out, out
    assert "(width 2) at " in out and "interpolated" not in out, "one network: timed, nothing to interpolate"
    assert "whole runs assumed 1.0-1.5x longer" in out
    assert not (tmp_path / "r").exists(), "a dry run writes nothing, bench included"
