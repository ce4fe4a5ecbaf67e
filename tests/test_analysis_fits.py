"""Scaling-law fits on records that follow a KNOWN law plus noise: the intervals must cover the truth."""
import numpy as np
import pytest
from scipy.optimize import check_grad

from analysis import (AnalysisError, FitResult, FitSkipped, NotEnoughPointsError, fit, fit_compute_law,
                      fit_epochs_law, fit_epochs_laws, fit_joint_law, holdout_check, law_frontier, load,
                      pareto_frontier, predict, aggregate)
from analysis.laws import joint_law, log_error
from analysis.optimize import _objective, make_problem
from analysis.testing import make_record, write_records

TRUE = {"e_inf": 0.03, "A": 25.5, "alpha": 0.5, "B": 0.315, "beta": 0.8}  # error = e_inf + A·N^-alpha + B·E^-beta
# 8 seeds per cell: a bootstrap over n seeds underestimates the spread by sqrt((n-1)/n), so few seeds would
# make 95% intervals cover less than 95%. Fits use cell means, so more seeds cost almost no fit time.
WIDTHS, EPOCHS, SEEDS, NOISE = (32, 64, 96, 128), (5, 10, 20, 40, 80), 8, 0.001
N_BOOT = 40


def num_params(width):
    return round(6_570_488 / 64**2 * width**2)  # what make_record writes


def true_error(width, epochs):
    return TRUE["e_inf"] + TRUE["A"] * num_params(width) ** -TRUE["alpha"] + TRUE["B"] * epochs ** -TRUE["beta"]


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    rng = np.random.default_rng(2)  # fixed; for this draw every estimate lies within 0.02 of the truth
    records = [make_record(width=w, epochs=e, seed=s, ema_val_acc=1 - true_error(w, e) + rng.normal(0, NOISE))
               for w in WIDTHS for e in EPOCHS for s in range(SEEDS)]
    directory = tmp_path_factory.mktemp("law")
    write_records(directory, records)
    return load(directory).frame


@pytest.fixture(scope="module")
def joint(frame):
    return fit_joint_law(frame, n_boot=N_BOOT, seed=0)


def test_joint_law_recovers_parameters_within_intervals(joint):
    assert isinstance(joint, FitResult) and joint.law == "joint"
    assert joint.variables == ("num_params", "epochs")
    assert joint.n_points == len(WIDTHS) * len(EPOCHS) * SEEDS and joint.n_cells == 20 and joint.n_boot == N_BOOT
    for name, truth in TRUE.items():
        low, high = joint.intervals[name]
        assert low <= truth <= high, f"{name}: true {truth} outside [{low:.4g}, {high:.4g}]"
        assert low <= joint.params[name] <= high
    # the well-determined parameters are also close in value
    for name in ("e_inf", "B", "beta"):
        assert joint.params[name] == pytest.approx(TRUE[name], rel=0.1)
    assert joint.residual_rmse < 2 * NOISE
    assert joint.draws.shape == (N_BOOT, 5) and np.unique(joint.draws[:, 4]).size > N_BOOT // 2


def test_epochs_law_per_width_recovers_its_parameters(frame):
    fits = fit_epochs_laws(frame, n_boot=N_BOOT)
    assert sorted(fits) == list(WIDTHS)
    misses = 0
    for width, result in fits.items():
        assert result.subset == {"width": width}
        truth = {"c": TRUE["e_inf"] + TRUE["A"] * num_params(width) ** -TRUE["alpha"], "a": TRUE["B"], "b": TRUE["beta"]}
        misses += sum(not result.intervals[k][0] <= v <= result.intervals[k][1] for k, v in truth.items())
        assert result.params["b"] == pytest.approx(TRUE["beta"], rel=0.1)
    # 12 intervals at 95% each: one miss is chance (expected 0.6), two would say the intervals are too narrow
    assert misses <= 1, f"{misses} of 12 true parameters fell outside their 95% intervals"


def test_compute_law_recovers_its_parameters(tmp_path):
    truth = {"e_inf": 0.04, "A": 3.0e3, "alpha": 0.3}
    rng = np.random.default_rng(2)
    records = []
    for w in (32, 64, 128):
        for e in (5, 10, 20, 40):
            flops = make_record(width=w, epochs=e)["train_flops"]
            error = truth["e_inf"] + truth["A"] * flops ** -truth["alpha"]
            records += [make_record(width=w, epochs=e, seed=s, ema_val_acc=1 - error + rng.normal(0, NOISE))
                        for s in range(SEEDS)]
    write_records(tmp_path, records)
    result = fit_compute_law(load(tmp_path).frame, n_boot=30)
    for name, value in truth.items():
        assert result.intervals[name][0] <= value <= result.intervals[name][1], name
    assert result.params["alpha"] == pytest.approx(truth["alpha"], rel=0.1)


def test_predict_untried_cell_with_interval(joint):
    pred = predict(joint, width=160, epochs=100)
    truth = true_error(160, 100)
    assert pred.error_low <= pred.error <= pred.error_high
    assert pred.error_low <= truth <= pred.error_high
    assert pred.inputs["num_params"] == pytest.approx(num_params(160), rel=1e-6)  # width → num_params power law
    assert pred.ema_val_acc == pytest.approx(1 - pred.error)
    same = predict(joint, num_params=num_params(160), epochs=100)
    assert same.error == pytest.approx(pred.error, rel=1e-6)
    grid = predict(joint, width=np.array([64, 128]), epochs=np.array([10, 80]))
    assert grid.error.shape == (2,) and np.all(grid.error_low <= grid.error)
    with pytest.raises(AnalysisError, match="takes num_params, epochs, width"):
        predict(joint, depth=3)


def test_holdout_check_reports_predicted_vs_observed(frame):
    result = holdout_check(frame, "width", n_boot=20)
    table = result.table
    assert result.value == max(WIDTHS) and len(table) == len(EPOCHS)
    assert list(table.columns) == ["width", "epochs", "n", "observed", "predicted", "predicted_low",
                                   "predicted_high", "inside"]
    assert (table["predicted_low"] <= table["predicted"]).all() and (table["predicted"] <= table["predicted_high"]).all()
    assert (abs(table["observed"] - table["predicted"]) < 0.005).all()
    assert 128 not in result.fit.size_of_width
    assert "held out width=128" in result.summary()


def test_frontiers(frame, joint):
    table = aggregate(frame)
    front = pareto_frontier(table)
    assert front["train_flops"].is_monotonic_increasing and front["mean"].is_monotonic_increasing
    assert front.iloc[-1]["mean"] == table["mean"].max()
    law = law_frontier(joint, frame)
    assert set(law["width"]) <= set(WIDTHS) and len(law) == 40


def test_too_few_points_says_so(tmp_path):
    write_records(tmp_path, [make_record(width=w, epochs=e, ema_val_acc=0.9) for w in (64, 128) for e in (10, 20)])
    small = load(tmp_path).frame
    with pytest.raises(NotEnoughPointsError, match=r"joint law: need ≥6 distinct cells, have 4"):
        fit_joint_law(small, n_boot=5)
    with pytest.raises(NotEnoughPointsError, match=r"need ≥4 distinct cells, have 2"):
        fit_epochs_law(small, 64, n_boot=5)
    skipped = fit_epochs_laws(small, n_boot=5)
    assert all(isinstance(s, FitSkipped) and "not enough points" in s.reason for s in skipped.values())
    with pytest.raises(NotEnoughPointsError, match="not enough points"):
        holdout_check(small, "epochs", n_boot=5)


def test_one_seed_per_cell_gives_no_invented_intervals(frame):
    single = frame[frame["seed"] == 0]
    result = fit_epochs_law(single, 64, n_boot=10)
    assert result.n_boot == 0 and all(np.isnan(v).all() for v in result.intervals.values())
    assert "single run" in result.note and "note:" in result.summary()
    assert result.params["b"] == pytest.approx(TRUE["beta"], rel=0.2)
    pred = predict(result, epochs=160)
    assert np.isfinite(pred.error) and np.isnan(pred.error_low)
    partly = fit_epochs_law(frame[(frame["seed"] < 2) & ~((frame["seed"] == 1) & (frame["epochs"] == 5))], 64, n_boot=5)
    assert partly.n_boot == 5 and "1 of 5 cells have a single run" in partly.note


def test_single_epochs_value_is_not_enough_for_the_epochs_law(frame):
    with pytest.raises(NotEnoughPointsError, match="have 1"):
        fit_epochs_law(frame[frame["epochs"] == 80], 64, n_boot=5)
    # enough cells but only two epochs values: the exponent is not identifiable
    with pytest.raises(NotEnoughPointsError, match="3 distinct epochs values, have 2"):
        fit_joint_law(frame[frame["epochs"].isin([5, 80])], n_boot=5)


def test_dispatch_and_parallel_bootstrap_agree(frame):
    subset = frame[frame["width"] == 64]
    serial = fit(subset, "epochs", n_boot=6, seed=3)
    parallel = fit(subset, "epochs", n_boot=6, seed=3, n_jobs=2)
    np.testing.assert_allclose(serial.draws, parallel.draws)
    with pytest.raises(AnalysisError, match="valid laws"):
        fit(frame, "chinchilla")


def test_objective_gradient_and_log_space_law_match_slow_references():
    law = joint_law()
    x = np.array([[6.5e6, 10.0], [2.6e7, 80.0], [1.5e7, 20.0]])
    params = np.array([0.03, 25.5, 0.5, 0.315, 0.8])
    direct = params[0] + params[1] * x[:, 0] ** -params[2] + params[3] * x[:, 1] ** -params[4]
    np.testing.assert_allclose(np.exp(log_error(law, params, x)), direct, rtol=1e-12)
    problem = make_problem(law, x, direct * 1.01)
    for start in problem.starts[:4]:
        logy = np.log(problem.error)
        error = check_grad(lambda t: _objective(t, problem.logx, logy)[0],
                           lambda t: _objective(t, problem.logx, logy)[1], start + 0.05)
        assert error < 1e-5


def test_blas_fallback_limits_and_restores_openblas_threads():
    from analysis.blas import _openblas_handles, _openblas_one_thread

    handles = _openblas_handles()
    if not handles:
        pytest.skip("no OpenBLAS found in this process")
    before = [get() for get, _ in handles]
    with _openblas_one_thread():
        assert [get() for get, _ in handles] == [1] * len(handles)
    assert [get() for get, _ in handles] == before
