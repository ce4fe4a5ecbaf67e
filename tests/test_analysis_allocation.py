"""Compute-optimal allocation: the efficient envelope against the closed-form optimum, the allocation exponent,
extrapolation marks, and the data's Pareto frontier."""
import numpy as np
import pytest

from analysis import aggregate, allocation_exponent, efficient_envelope, fit_law, load, pareto_frontier, width_sizes
from analysis.allocation import default_budgets, time_per_epoch
from analysis.testing import grid_records, num_params_of, write_records

ALPHA, BETA = 0.5, 0.8


def true_error(n, e):
    return 0.03 + 57 * n**-ALPHA + 0.05 * e**-BETA


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    directory = tmp_path_factory.mktemp("alloc")
    write_records(directory, grid_records(true_error, widths=(32, 48, 64, 96, 128), epochs=(5, 10, 20, 40, 80),
                                          seeds=3, sd=0.001, seed=2))
    return load(directory).frame


@pytest.fixture(scope="module")
def fit(frame):
    return fit_law(frame, "separable", n_boot=40)


def test_allocation_exponent_is_beta_over_alpha_plus_beta(fit):
    result = allocation_exponent(fit)
    value, (low, high), unidentified = result.value, result.interval, result.unidentified
    assert value == pytest.approx(fit.params["beta"] / (fit.params["alpha"] + fit.params["beta"]))
    assert low <= BETA / (ALPHA + BETA) <= high and not unidentified


def test_laws_without_a_closed_form_give_no_exponent(frame):
    assert allocation_exponent(fit_law(frame, "per_width", n_boot=0)) is None


def test_envelope_follows_the_closed_form_optimum(frame, fit):
    """make_record's num_params and FLOPs per epoch are both ∝ width², so C ∝ N·E and the law's optimum is
    N_opt ∝ C^(beta/(alpha+beta)) exactly: the searched envelope must show that slope."""
    sizes = width_sizes(frame)
    budgets = np.array([1e14, 1e15])  # optima at widths ~70 and ~150: inside the search, away from its edges
    env = efficient_envelope(fit, sizes, budgets).table
    n_opt = np.array([num_params_of(w) for w in env["width"]])
    slope = np.log(n_opt[1] / n_opt[0]) / np.log(budgets[1] / budgets[0])
    expected = fit.params["beta"] / (fit.params["alpha"] + fit.params["beta"])
    assert slope == pytest.approx(expected, abs=0.03)  # the width grid's 1.2% steps
    # each row is the best over widths: no other width does better at that budget
    w = np.geomspace(16, 256, 400)
    per_epoch = sizes.values("flops_per_epoch", w)
    for budget, acc in zip(budgets, env["acc"]):
        err, _ = fit.predict_error(sizes.values("num_params", w), budget / per_epoch)
        assert 1 - acc <= err.min() * (1 + 1e-3)


def test_extrapolated_budgets_are_marked(frame, fit):
    table = aggregate(frame)
    budgets = default_budgets(table["train_flops"])
    env = efficient_envelope(fit, width_sizes(frame), budgets).table
    assert budgets[-1] == pytest.approx(10 * table["train_flops"].max())
    assert env["extrapolated"].iloc[-1] and "outside the fitted" in env["note"].iloc[-1]
    assert (env["width_low"] <= env["width_median"]).all() and (env["width_median"] <= env["width_high"]).all()


def test_time_frontier_searches_the_observed_widths(frame, fit):
    per_epoch = time_per_epoch(frame)
    assert sorted(per_epoch) == [32, 48, 64, 96, 128]
    table = aggregate(frame)
    env = efficient_envelope(fit, width_sizes(frame), default_budgets(table["train_time_s"], n=8, beyond=1.0),
                             cost="train_time_s", per_epoch=per_epoch)
    assert set(env.table["width"]) <= set(per_epoch) and env.cost == "train_time_s"


def test_pareto_frontier_in_flops_and_time(frame):
    table = aggregate(frame)
    for cost in ("train_flops", "train_time_s"):
        front = pareto_frontier(table, cost=cost)
        assert front[cost].is_monotonic_increasing and front["mean"].is_monotonic_increasing
        assert front.iloc[-1]["mean"] == table["mean"].max()
