"""Grids of any size: a grid over the run limit is refused before it is expanded, and the dry run's bench times a
few networks and interpolates the rest by FLOPs per image (netbench). Speed and memory are benchmarked, not
tested here (results/benchmarks/*-grid-scale)."""
from __future__ import annotations

import math
import time

import pytest

import speedrun
from studies import load_study
from studies.cli import main
from studies import netbench
from studies.netbench import Timed, cpu_batch, interpolate, pick
from studies.studyfile import StudyError
from test_studies_run import write_study

HUGE = {"width": list(range(1, 401)), "epochs": list(range(1, 201)), "seed": list(range(200))}  # 16,000,000 runs


def test_a_grid_over_the_limit_is_refused_before_it_is_expanded(tmp_path, capsys):
    path = write_study(tmp_path, "huge", HUGE)
    t0 = time.perf_counter()
    with pytest.raises(StudyError) as info:
        load_study(path)
    # Expanding 16M runs takes many minutes: an answer at all within this bound means nothing was expanded.
    assert time.perf_counter() - t0 < 60
    assert "400 width x 200 epochs x 200 seed = 16,000,000 runs, over the limit of 1,000,000" in str(info.value)
    assert "--allow-large-grid" in str(info.value)
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "over the limit of 1,000,000" in capsys.readouterr().err


def test_the_limit_is_a_parameter_and_a_flag(tmp_path, capsys):
    path = write_study(tmp_path, "six", {"width": [2, 4], "seed": [0, 1, 2]})
    with pytest.raises(StudyError, match="6 runs, over the limit of 5"):
        load_study(path, max_runs=5)
    assert len(load_study(path, max_runs=None).runs()) == 6
    assert main(["status", str(path), "--results", str(tmp_path / "r"), "--allow-large-grid"]) == 0


def test_runs_are_expanded_once_and_match_a_fresh_expansion(tmp_path):
    study = load_study(write_study(tmp_path, "g", {"width": [2, 4], "epochs": [1, 2], "seed": [0, 1]}))
    first, again = study.runs(), study.runs()
    assert first == again and first is not again, "a copy of the cached runs, so callers cannot edit the cache"
    fresh = [study.run_at(p) for p in study.points()]
    assert [r.run_id for r in first] == [r.run_id for r in fresh]
    assert [(r.config, r.point) for r in first] == [(r.config, r.point) for r in fresh]
    assert study.size == 8 == len(first)


def test_seeds_built_from_their_cell_match_full_construction_in_any_axis_order(tmp_path):
    # The seed first (varying slowest): each cell's later seeds come long after its first one.
    study = load_study(write_study(tmp_path, "order", {"seed": [3, 0, 9], "width": [2, 4], "epochs": [1, 2]}))
    fresh = [study.run_at(p) for p in study.points()]
    assert [(r.run_id, r.config, r.point) for r in study.runs()] == [(r.run_id, r.config, r.point) for r in fresh]


def test_a_bad_seed_in_a_later_point_of_a_cell_is_reported_once_with_its_count(tmp_path):
    path = write_study(tmp_path, "badseed", {"width": [2, 4], "seed": [0, -1]})
    with pytest.raises(StudyError) as info:
        load_study(path)
    message = str(info.value)
    assert "seed=-1 is invalid: expected an integer >= 0 (in 2 of 4 runs, e.g. width=2, seed=-1)" in message, message


def test_cached_flops_match_a_fresh_model_count():
    for config in (speedrun.TrainConfig(width=8, epochs=3, seed=5), speedrun.TrainConfig(width=8, epochs=3, seed=6),
                   speedrun.TrainConfig(width=16, epochs=1)):
        steps = config.derived().total_steps
        from speedrun.model import Net
        import torch

        with torch.device("meta"):
            net = Net(config)
        assert speedrun.train_flops(config) == 3 * net.forward_flops_per_image() * steps * config.batch_size


def test_pick_takes_the_ends_first_then_the_middle():
    configs = [speedrun.TrainConfig(width=w) for w in (32, 4, 16, 8, 64)]
    assert [c.width for c in pick(configs, 3)] == [4, 64, 16]
    assert [c.width for c in pick(configs[:2], 3)] == [4, 32]


def test_interpolation_is_linear_in_log_flops_and_flat_outside():
    timed = [Timed(4, 1e6, 10.0, "cpu"), Timed(16, 1e8, 30.0, "cpu")]
    assert interpolate(timed, 1e7) == pytest.approx(20.0)  # halfway in log FLOPs
    assert interpolate(timed, 1e6 * 10 ** 0.5) == pytest.approx(15.0)
    assert interpolate(timed, 1e3) == 10.0 and interpolate(timed, 1e12) == 30.0
    assert interpolate([timed[0]], 5e9) == 10.0
    assert not math.isnan(interpolate(timed + [Timed(8, 1e8, 40.0, "cpu")], 1e8))


def test_dry_run_of_many_widths_times_a_few_and_says_it_interpolated(tmp_path, capsys):
    path = write_study(tmp_path, "wide", {"width": [1, 2, 3, 4, 5, 6], "seed": [0, 1]}, {"threads": 1})
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    rate = [line for line in out.splitlines() if "rate: speedrun bench" in line]
    assert len(rate) == 1, out
    timed = int(rate[0].split("(1 threads): ")[1].split(" of 6 network(s)")[0])
    assert 1 <= timed <= 3, rate[0]
    assert (f"the other {6 - timed} interpolated by FLOPs per image" in rate[0]) == (timed < 6), rate[0]


def test_a_cpu_times_a_smaller_batch_and_the_rate_line_says_so(tmp_path, capsys, monkeypatch):
    assert cpu_batch(speedrun.TrainConfig(width=128, device="cpu")) == 128
    assert cpu_batch(speedrun.TrainConfig(width=8, device="cpu")) == 512  # never more than the run's own
    assert cpu_batch(speedrun.TrainConfig(width=128, device="cuda")) == 512  # a GPU's speed depends on the batch
    monkeypatch.setattr(netbench, "_CPU_BATCH_WIDTH", 4 * 16)  # width 4: 16 images instead of the run's 256
    path = write_study(tmp_path, "cut", {"width": [4], "seed": [0]},
                       {"threads": 1, "batch_size": 256, "train_subset": 512})
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    rate = [line for line in capsys.readouterr().out.splitlines() if "rate: speedrun bench" in line]
    assert len(rate) == 1 and "(width 4 on 16 images a step)" in rate[0], rate


def test_a_prestarted_bench_process_is_the_one_used_and_is_ended():
    netbench.prestart()
    started = netbench._prestarted
    assert started is not None and started.proc.poll() is None
    timed = netbench.bench_within([speedrun.TrainConfig(width=2, device="cpu", threads=1, data="synthetic",
                                                        batch_size=64, train_subset=128)])
    assert len(timed) == 1 and timed[0].batch_size == 64 and timed[0].rate > 0
    assert netbench._prestarted is None and started.proc.returncode is not None, "taken, then ended"


def test_a_network_that_cannot_fit_the_budget_left_is_not_started(monkeypatch):
    sent = []
    real_send = netbench._send
    monkeypatch.setattr(netbench, "_send",
                        lambda bencher, config: sent.append(config.width) or real_send(bencher, config))
    tiny = dict(device="cpu", threads=1, data="synthetic", batch_size=64, train_subset=128)
    # width 256 x 64 images x 4 steps is about 1.3 TFLOP: far beyond 2 s at any CPU rate the tiny net shows
    timed = netbench.bench_within([speedrun.TrainConfig(width=2, **tiny), speedrun.TrainConfig(width=256, **tiny),
                                   speedrun.TrainConfig(width=3, **tiny)], budget_s=2.0)
    assert sent == [2, 3] and [t.width for t in timed] == [2, 3]
