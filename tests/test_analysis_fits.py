"""Fits on records drawn from a KNOWN law: recovery within intervals, lack of fit, identification flags, and
each degenerate case the issue names (one seed per cell, a failed run, constant cells, a width with fewer
epochs values than parameters, a flat curve)."""
import dataclasses

import numpy as np
import pytest

from analysis import NOT_IDENTIFIED, NotEnoughPointsError, cell_table, fit_cells, fit_law, load
from analysis.cells import PRIOR_DOF
from analysis.testing import grid_records, make_record, num_params_of, write_records

TRUE = {"e_inf": 0.04, "A": 60.0, "alpha": 0.5, "B": 0.3, "beta": 0.8}
WIDTHS, EPOCHS = (32, 48, 64, 96, 128), (5, 10, 20, 40, 80)
N_BOOT = 60


def true_error(n, e):
    return TRUE["e_inf"] + TRUE["A"] * n ** -TRUE["alpha"] + TRUE["B"] * e ** -TRUE["beta"]


def _frame(tmp_path, records):
    write_records(tmp_path, records)
    return load(tmp_path).frame


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    records = grid_records(true_error, widths=WIDTHS, epochs=EPOCHS, seeds=4, sd=0.0015, seed=3)
    return _frame(tmp_path_factory.mktemp("law"), records)


@pytest.fixture(scope="module")
def separable(frame):
    return fit_law(frame, "separable", n_boot=N_BOOT, seed=1)


def test_separable_law_recovers_the_truth_within_its_intervals(separable):
    fit = separable
    assert fit.n_runs == 100 and fit.n_cells == 25 and fit.n_boot == N_BOOT and fit.dof == 20
    for name in ("e_inf", "alpha", "beta"):
        low, high = fit.intervals[name]
        assert low <= TRUE[name] <= high, f"{name}: {TRUE[name]} outside [{low:.4g}, {high:.4g}]"
    # centred coefficients are the terms' values at the data's centre: A0 = A·N0^(−alpha)
    n0, e0 = fit.centre["num_params"], fit.centre["epochs"]
    assert n0 == pytest.approx(np.exp(np.mean(np.log([num_params_of(w) for w in WIDTHS]))))
    assert fit.params["A0"] == pytest.approx(TRUE["A"] * n0 ** -TRUE["alpha"], rel=0.25)
    assert fit.params["B0"] == pytest.approx(TRUE["B"] * e0 ** -TRUE["beta"], rel=0.1)
    assert not fit.not_identified, fit.flag_reasons
    assert fit.chi2_per_dof < 2.5 * fit.chi2_expected
    assert fit.draws.shape == (N_BOOT, 5) and len(fit.std_residuals) == 25
    assert "not identified" not in fit.summary()


def test_cell_weights_pool_small_cells_and_moderate_the_rest(tmp_path):
    records = [make_record(width=64, epochs=10, seed=s, ema_val_acc=v) for s, v in enumerate([0.90, 0.91, 0.93])]
    records += [make_record(width=64, epochs=20, seed=s, ema_val_acc=v) for s, v in enumerate([0.94, 0.95])]
    cells = cell_table(_frame(tmp_path, records))
    err = np.array([1 - np.mean([0.90, 0.91, 0.93]), 1 - 0.945])
    own = np.var([0.90, 0.91, 0.93], ddof=1) / err[0] ** 2  # relative variances: SD as a fraction of the error
    pooled = (2 * own + 1 * np.var([0.94, 0.95], ddof=1) / err[1] ** 2) / 3
    assert cells.seed_rel_sd == pytest.approx(np.sqrt(pooled)) and cells.seed_dof == 3
    assert cells.sd[0] == pytest.approx(np.sqrt((2 * own + PRIOR_DOF * pooled) / (2 + PRIOR_DOF)) * err[0])
    assert cells.sd[1] == pytest.approx(np.sqrt(pooled) * err[1])  # n = 2: the pooled relative SD
    assert cells.se_log[1] == pytest.approx(np.sqrt(pooled) / np.sqrt(2))
    assert cells.sd_at(0.98) == pytest.approx(np.sqrt(pooled) * 0.02)  # one run's SD at any accuracy


def test_seed_noise_proportional_to_the_error_is_measured_and_carried_to_any_cell(tmp_path):
    """Runs that scatter by 3% of their cell's error (1.2 points at 40% error, 0.15 at 5%): the pooled relative
    SD recovers the 3%, the law is not called a miss for it, and a prediction's one-run SD is 3% of ITS error."""
    from analysis import predict_cell, width_sizes
    frame = _frame(tmp_path, grid_records(true_error, widths=WIDTHS, epochs=EPOCHS, seeds=4, rel_sd=0.03, seed=11))
    fit = fit_law(frame, "separable", n_boot=20)
    assert fit.seed_rel_sd == pytest.approx(0.03, rel=0.2)  # 75 dof: the SD's SE is about 8%
    assert fit.lack_of_fit_p > 0.01
    prediction = predict_cell(fit, width_sizes(frame), 128, 80)
    assert prediction.seed_sd == pytest.approx(fit.seed_rel_sd * (1 - prediction.predicted_acc))
    small = predict_cell(fit, width_sizes(frame), 32, 5)
    assert small.seed_sd / prediction.seed_sd == pytest.approx((1 - small.predicted_acc) / (1 - prediction.predicted_acc))


@pytest.mark.parametrize("proportional", [True, False])
def test_the_noise_test_tells_an_sd_proportional_to_the_error_from_a_constant_one(tmp_path, proportional):
    """Six runs per cell, the errors spanning 6-17%: runs scattered by 3% of their error are told apart from
    runs scattered by a constant 0.3 points, each with its slope within 3 SE of the truth (1 and 0)."""
    from analysis.cells import noise_scaling
    noise = {"rel_sd": 0.03} if proportional else {"sd": 0.003}
    records = grid_records(true_error, widths=WIDTHS, epochs=EPOCHS, seeds=6, seed=5 if proportional else 6, **noise)
    test = noise_scaling(cell_table(_frame(tmp_path, records)))
    assert test.n_cells == 25
    assert abs(test.slope - (1.0 if proportional else 0.0)) < 3 * test.slope_se, test
    if proportional:
        assert test.loglik_gain > 2 and test.verdict() == "the cells favour it"
    else:
        assert test.loglik_gain < -2 and "favour a constant SD" in test.verdict()


def test_lack_of_fit_widens_intervals_and_says_so(tmp_path):
    # the truth has an interaction the separable law lacks: error ∝ N^-0.5·E^-0.8 with tiny noise
    records = grid_records(lambda n, e: 0.03 + 2000 * n**-0.5 * e**-0.8, widths=WIDTHS, epochs=EPOCHS, seeds=3,
                           sd=0.0005, seed=4)
    fit = fit_law(_frame(tmp_path, records), "separable", n_boot=20)
    assert fit.chi2_per_dof > 5 * fit.chi2_expected and fit.inflation > 5
    assert fit.lack_of_fit_p < 0.05
    assert "misses the cells by more than seed noise" in fit.lack_of_fit()
    assert f"widened ×{np.sqrt(fit.inflation):.2f}" in fit.summary()


def test_lack_of_fit_that_is_not_significant_is_not_called_a_miss(tmp_path):
    # the right law on noisy data: χ²/dof may exceed its expectation by chance; the text must not claim a miss
    records = grid_records(true_error, widths=WIDTHS, epochs=EPOCHS, seeds=3, sd=0.0015, seed=0)
    fit = fit_law(_frame(tmp_path, records), "separable", n_boot=0)
    fit = dataclasses.replace(fit, chi2=1.3 * fit.chi2_expected * fit.dof, inflation=1.3)
    assert 0.05 < fit.lack_of_fit_p < 1
    text = fit.lack_of_fit()
    assert "not significantly" in text and "misses the cells" not in text and "widened ×1.14" in text
    calm = dataclasses.replace(fit, chi2=0.5 * fit.chi2_expected * fit.dof, inflation=1.0)
    assert calm.lack_of_fit().startswith("consistent with seed noise")
    barely = dataclasses.replace(fit, inflation=1.004)
    assert barely.lack_of_fit().startswith("consistent with seed noise")


def test_flat_curve_is_flagged_not_identified(tmp_path):
    # accuracy depends on width only: the epochs term has nothing to fit, and the report must not rest on it
    records = grid_records(lambda n, e: 0.04 + 60 * n**-0.5, widths=WIDTHS, epochs=EPOCHS, seeds=3, sd=0.0015, seed=5)
    fit = fit_law(_frame(tmp_path, records), "separable", n_boot=40)
    assert {"B0", "beta"} <= set(fit.not_identified), fit.flag_reasons
    from analysis.fits import AT_BOUND, INTERVAL_AT_BOUND, TERM_VANISHES

    assert fit.flag_reasons["beta"].cause in (TERM_VANISHES, AT_BOUND, INTERVAL_AT_BOUND)
    assert NOT_IDENTIFIED in fit.summary()


def test_one_seed_per_cell_estimates_noise_from_residuals(frame):
    fit = fit_law(frame[frame["seed"] == 0], "separable", n_boot=20)
    assert fit.cells.mode == "residual" and np.isnan(fit.chi2)
    assert any("seed noise is unmeasured" in note for note in fit.notes)
    assert fit.n_boot == 20 and np.isfinite(fit.seed_rel_sd) and 0 < fit.seed_rel_sd < 0.2
    assert fit.intervals["beta"][0] <= TRUE["beta"] <= fit.intervals["beta"][1]
    # without replicates a cell's SE comes from the law's residual SD; with them, from the cells themselves
    assert fit.cells.sem_or(fit.seed_rel_sd) == pytest.approx(fit.seed_rel_sd * fit.cells.error / np.sqrt(fit.cells.n))
    replicated = cell_table(frame)
    assert replicated.mode == "cells" and np.array_equal(replicated.sem_or(1.0), replicated.sem)


def test_constant_cells_have_no_seed_noise_and_still_fit(tmp_path):
    records = grid_records(true_error, widths=WIDTHS, epochs=EPOCHS, seeds=3, sd=0.0, seed=0)
    cells = cell_table(_frame(tmp_path, records))
    assert cells.mode == "residual" and cells.seed_dof == 50 and cells.seed_rel_sd == 0
    fit = fit_cells(cells, "separable", n_boot=10)
    assert fit.params["beta"] == pytest.approx(TRUE["beta"], rel=0.02)  # noise-free: exact up to rounding


def test_failed_and_diverged_runs_are_not_data(tmp_path, frame):
    records = grid_records(true_error, widths=WIDTHS, epochs=EPOCHS, seeds=2, sd=0.0015, seed=6)
    records += [make_record(width=128, epochs=80, seed=9, status="failed"),
                make_record(width=128, epochs=80, seed=10, status="diverged")]
    fit = fit_law(_frame(tmp_path, records), "separable", n_boot=0)
    assert fit.n_runs == 50 and fit.n_boot == 0 and np.isnan(fit.intervals["beta"][0])


def test_width_with_fewer_epochs_values_than_parameters(tmp_path):
    records = grid_records(true_error, widths=(32, 64, 128), epochs=(5, 10, 20, 40), seeds=2, sd=0.0015, seed=7)
    records += grid_records(true_error, widths=(96,), epochs=(10,), seeds=2, sd=0.0015, seed=8)
    frame = _frame(tmp_path, records)
    per_width = fit_law(frame, "per_width", n_boot=10)
    assert per_width.law.widths == (32, 64, 128)
    assert any("width 96" in why and "one epochs value" in why for why in per_width.excluded)
    assert fit_law(frame, "separable", n_boot=0).n_cells == 13  # laws in N use the lone cell
    with pytest.raises(NotEnoughPointsError, match="need ≥2 epochs values at some width, have 1"):
        fit_law(frame[frame["epochs"] == 10], "per_width", n_boot=0)


def test_too_few_values_of_a_variable_say_so(frame):
    with pytest.raises(NotEnoughPointsError, match="3 distinct epochs values, have 2"):
        fit_law(frame[frame["epochs"].isin([5, 80])], "separable", n_boot=0)
    with pytest.raises(NotEnoughPointsError, match="distinct num_params values, have 2"):
        fit_law(frame[frame["width"].isin([32, 128])], "separable", n_boot=0)


def test_huber_option_and_parallel_bootstrap(frame):
    huber = fit_law(frame, "separable", n_boot=0, loss="huber")
    assert any("Huber" in note for note in huber.notes)
    assert huber.params["beta"] == pytest.approx(TRUE["beta"], rel=0.15)
    serial = fit_law(frame, "per_width", n_boot=6, seed=3)
    parallel = fit_law(frame, "per_width", n_boot=6, seed=3, n_jobs=2)
    np.testing.assert_allclose(serial.draws, parallel.draws, rtol=1e-9)
