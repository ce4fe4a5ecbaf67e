"""checks.toml (out-of-sample checks) and grid progress (provisional reports)."""
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from analysis import (AnalysisError, analyse, fit_law, grid_status, load, load_reference, read_checks, run_check,
                      width_sizes)
from analysis.checks import combined_z, recipe_differences
from analysis.joint import joint_checks
from analysis.report.fit_figures import plot_checks
from analysis.report.data_figures import new_axes
from analysis.report import render, report
from analysis.report.summary import _told_apart
from analysis.testing import grid_records, make_record, num_params_of, write_records

CHECKS = """
[[check]]
name = "width 64 x 10 epochs elsewhere"
records = "../elsewhere"
width = 64
epochs = 10
"""


def true_error(n, e):
    return 0.04 + 60 * n**-0.5 + 0.3 * e**-0.8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    study = root / "study"
    write_records(study, grid_records(true_error, widths=(8, 16, 24, 32), epochs=(3, 5, 10, 20), seeds=3, sd=0.002,
                                      seed=1, study="grid", config={"precision": "fp32"}, precision="fp32"))
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    acc = 1 - true_error(num_params_of(64), 10)
    for precision, value in (("fp32", acc + 0.001), ("bf16", acc + 0.003)):
        record = make_record(width=64, epochs=10, seed=0, ema_val_acc=value, study=None,
                             config={"precision": precision}, precision=precision)
        (elsewhere / f"w64-{precision}.json").write_text(json.dumps(record))  # directly in the folder
    (study / "checks.toml").write_text(CHECKS)
    return study


def test_check_compares_like_for_like_and_marks_the_rest(setup):
    frame = load(setup, include_failed=True).frame
    fit = fit_law(frame, "separable", n_boot=40)
    [check] = read_checks(setup)
    assert check.width == 64 and check.records.name == "elsewhere"
    result = run_check(check, fit, width_sizes(frame), frame, study="grid")
    table = result.table.set_index("precision")
    assert table.loc["fp32", "like_for_like"] and not table.loc["bf16", "like_for_like"]
    assert "precision: bf16 (study: fp32)" in table.loc["bf16", "differences"]
    assert result.n_like == 1 and result.n_all == 2
    p = result.prediction
    assert p.extrapolated and p.width == 64
    expected = (table.loc["fp32", "ema_val_acc"] - p.predicted_acc) / np.hypot(p.se_pred, p.seed_sd)
    assert table.loc["fp32", "z"] == pytest.approx(expected) and result.z_like == pytest.approx(expected)
    mean_all = table["ema_val_acc"].mean()
    assert result.z_all == pytest.approx((mean_all - p.predicted_acc) / np.hypot(p.se_pred, p.seed_sd / np.sqrt(2)))


def test_check_asks_every_other_law_and_the_report_shows_the_spread(setup):
    frame = load(setup, include_failed=True).frame
    fits = {name: fit_law(frame, name, n_boot=20) for name in ("separable", "interaction", "per_width")}
    [check] = read_checks(setup)
    result = run_check(check, fits["separable"], width_sizes(frame), frame, study="grid", others=tuple(fits.values()))
    alternatives = dict(result.alternatives)
    assert set(alternatives) == {"interaction", "per_width"}  # not the chosen law again
    assert alternatives["interaction"].predicted_acc == pytest.approx(
        run_check(check, fits["interaction"], width_sizes(frame), frame, study="grid").prediction.predicted_acc)
    from analysis.errors import NotComputed

    # it cannot predict an unseen width: said, not hidden
    assert isinstance(alternatives["per_width"], NotComputed) and "no curve for width 64" in alternatives["per_width"].reason
    text = render(analyse(setup, n_boot=20))  # the whole path `analysis report` takes, without the figures
    assert "The same cell under every law fitted to the study" in text and "Other laws:" in text
    # the truth is separable; per_width wins CV here but cannot predict width 64, so the check says which law it used
    assert "Not the chosen law: the chosen per_width law has a curve per fitted width only" in text
    assert "| separable (the check's law) |" in text and "| per_width | — | not computed" in text
    assert "by the separable law, since the chosen law has a curve per fitted width only" in text
    assert "- Which law's form holds at 64 × 10 epochs: the fitted laws predict it" in text


def test_z_by_law_and_what_the_check_says_about_the_laws(setup):
    frame = load(setup, include_failed=True).frame
    fits = {name: fit_law(frame, name, n_boot=20) for name in ("separable", "interaction", "per_width")}
    [check] = read_checks(setup)
    result = run_check(check, fits["separable"], width_sizes(frame), frame, study="grid", others=tuple(fits.values()))
    zs = result.z_by_law()
    assert list(zs) == ["separable", "interaction"]  # the check's law first; per_width cannot predict width 64
    assert zs["separable"] == pytest.approx(result.z_like)  # like-for-like rows only (the fp32 record)
    like = result.table[result.table["like_for_like"]]
    assert zs["interaction"] == pytest.approx(combined_z(like, dict(result.alternatives)["interaction"])[0])
    told = lambda zs, n_like, n_all=3: _told_apart(SimpleNamespace(z_by_law=lambda: zs, n_like=n_like, n_all=n_all))
    assert told({"a": -1.2, "b": 1.7}, 3) == (" Its 3 like-for-like runs lie within |z| ≤ 2 of every law's "
                                             "prediction, so they cannot tell the laws apart.")
    assert told({"a": 0.3, "b": 2.9, "c": -2.4}, 0) == (" Its 3 runs lie more than 2 SE from b (z = +2.90), "
                                                       "c (z = -2.40); within 2 SE: a.")
    assert "1 like-for-like run lies" in told({"a": 0.1, "b": 0.5}, 1) and "so it cannot" in told({"a": 0.1, "b": 0.5}, 1)
    assert told({"a": 3.0, "b": -3.0}, 2).endswith("; within 2 SE: no law.")
    assert told({"a": 0.1}, 3) == ""  # one law alone: nothing to tell apart


def test_a_check_without_records_yet_states_its_prediction_before_they_land(setup, monkeypatch):
    """Pre-registration: the report gives the prediction, every law's, before a run of the cell exists, and names
    the folder as checks.toml writes it (relative), not by this machine's absolute path."""
    pending = setup.parent / "pending"
    pending.mkdir()
    (setup / "checks.toml").write_text(CHECKS + CHECKS.replace("elsewhere", "pending").replace("x 10", "x 40")
                                       .replace("epochs = 10", "epochs = 40"))
    monkeypatch.chdir(setup.parent)
    try:
        text = render(analyse("study", n_boot=20))
    finally:
        (setup / "checks.toml").write_text(CHECKS)
    summary = text[text.index("**Check: width 64 x 40 epochs pending**"):].splitlines()[0]
    assert "predicted " in summary and "one run: 95% PI" in summary
    assert "Not observed yet: no run records (*.json) under pending" in summary
    section = text[text.index("### width 64 x 40 epochs pending"):]
    assert "Nothing to compare" in section and "The same cell under every law fitted" in section
    assert "no records to give a z yet" in section
    assert str(setup.parent) not in text


@pytest.mark.parametrize("text, message", [
    ("[[check]]\nname = 'x'\nrecords = '.'\nwidth = 64\n", "check 1: `epochs` is missing"),
    ("[[check]]\nname = 'x'\nrecords = '.'\nwidth = '64'\nepochs = 10\n", "`width` = '64' should be an integer"),
    ("[[check]]\nname = 'x'\nrecords = 'checks.toml'\nwidth = 64\nepochs = 10\n", "checks.toml) is a file; name a folder of run records"),
    ("[[check]]\nname = 'x'\nrecords = '.'\nwidth = 64\nepochs = 10\nseed = 1\n", "unknown key 'seed' (valid: name"),
    ("[[check]]\nname = 'x'\nrecords = '.'\nwidth = 64\nepochs = -2\n", "`epochs` = -2 should be positive"),
    ("name = 'x'\n", "unknown top-level key 'name'"),
    ("[[check]\n", "not valid TOML"),
])
def test_bad_checks_toml_is_one_clear_line(tmp_path, text, message):
    (tmp_path / "checks.toml").write_text(text)
    with pytest.raises(AnalysisError) as caught:
        read_checks(tmp_path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_check_whose_folder_does_not_exist_yet_is_pending_and_the_others_still_run(setup):
    """A check named before its study first runs has no folder yet: it gives its prediction and says so, and the
    file's other checks are compared as usual (a missing folder used to void every check in the file)."""
    (setup / "checks.toml").write_text(CHECKS + CHECKS.replace("elsewhere", "not-yet").replace("x 10", "x 40")
                                       .replace("epochs = 10", "epochs = 40"))
    try:
        assert [c.records.name for c in read_checks(setup)] == ["elsewhere", "not-yet"]
        text = render(analyse(setup, n_boot=20))
    finally:
        (setup / "checks.toml").write_text(CHECKS)
    assert "checks.toml could not be used" not in text
    done = text[text.index("**Check: width 64 x 10 epochs elsewhere**"):].splitlines()[0]
    assert "Like-for-like z = " in done and "(n = 1)" in done
    pending = text[text.index("**Check: width 64 x 40 epochs not-yet**"):].splitlines()[0]
    assert "predicted " in pending and "Not observed yet: no records yet: the folder" in pending
    assert "not-yet does not exist" in pending


def test_predict_and_the_reports_check_pick_the_same_law_at_a_width_never_run(setup, capsys):
    """Here per_width wins CV but has no curve for width 64: the report's check and `analysis predict` must then
    choose the same law in N by the same rule, and give the same number (they once applied the rule differently)."""
    from analysis.cli import main
    a = analyse(setup, n_boot=20)
    [check] = a.checks
    assert a.choice.chosen == "per_width" and check.why_law
    assert main(["predict", str(setup), "--width", "64", "--epochs", "10", "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"note: {check.why_law}") and f"{check.prediction.law} law" in out
    assert main(["predict", str(setup), "--width", "64", "--epochs", "10", "--n-boot", "20", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["law"] == check.prediction.law
    assert shown["predicted_acc"] == pytest.approx(check.prediction.predicted_acc)


def test_the_checks_figure_draws_every_law_that_reaches_the_width_out_to_the_checks_epochs(setup, tmp_path):
    a = analyse(setup, n_boot=20)
    [check] = a.checks
    ax = new_axes()[1]
    assert plot_checks(ax, a.checks, a.choice.fits, a.table, a.sizes) is ax
    curves = [line for line in ax.get_lines() if len(line.get_xdata()) == 80]
    in_n = [f for f in a.choice.fitted() if not f.law.widths]  # per_width has no curve at width 64
    assert len(curves) == len(in_n) and [c.get_linestyle() for c in curves].count("-") == 1
    assert all(c.get_xdata()[0] == 3 and c.get_xdata()[-1] == pytest.approx(check.check.epochs) for c in curves)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "thick, banded: the checks' law (95%)" in labels and check.prediction.law in labels and "width=64" in labels
    assert max(c.get_linewidth() for c in curves) == [c for c in curves if c.get_linestyle() == "-"][0].get_linewidth()
    path = report(setup, n_boot=12)
    assert (setup / "figures" / "checks.png").is_file() and "(figures/checks.png)" in path.read_text()
    plain = tmp_path / "plain"  # no checks.toml: no checks figure, and no line saying it was not drawn
    write_records(plain, grid_records(true_error, widths=(8, 16, 32), epochs=(3, 5, 10), seeds=2, sd=0.002, seed=2))
    text = report(plain, n_boot=12).read_text()
    assert "checks.toml checks against" not in text and not (plain / "figures" / "checks.png").exists()
    with pytest.raises(AnalysisError, match="no check has both a prediction and runs"):
        plot_checks(new_axes()[1], [], a.choice.fits, a.table, a.sizes)


def _reference(recipe):
    return dataclasses.replace(load_reference(), recipe=recipe)


def test_the_reference_cell_a_study_lacks_is_predicted_beside_the_published_values_never_as_a_test(setup):
    """A study without the reference's cell (128 x 80) predicts it from its own records, every law's, and sets the
    published mean beside it: z = (mean - predicted) / sqrt(se_pred^2 + SD^2 / n), labelled not like-for-like."""
    reference = _reference({"data": "cifar10", "train_subset": None, "batch_size": 512})
    a = analyse(setup, n_boot=20, reference=reference)
    assert a.comparison is None
    r = a.reference_check
    p = r.prediction
    assert p is not None and (p.width, p.epochs) == (128, 80) and p.extrapolated and not r.reason
    sd = np.std(reference.values, ddof=1)
    assert r.z(p) == pytest.approx((np.mean(reference.values) - p.predicted_acc) / np.hypot(p.se_pred, sd / np.sqrt(7)))
    assert set(r.z_by_law()) == set(r.predictions()) and len(r.predictions()) >= 2
    text = render(a)
    section = text[text.index("## Comparison with the published reference"):text.index("## Figures")]
    assert "The study has no width 128 × 80 epochs cell" in section and "so nothing here reproduces it" in section
    assert f"mean {100 * p.predicted_acc:.2f}%" in section and "n = 7), z = " in section
    assert "Not like-for-like, so this is no test of the law" in section and "this study's ran on cuda in fp32" in section
    assert "The same cell under every law fitted to the study (z of the reference's mean" in section
    assert "(the prediction's law)" in section and "\n\n\n" not in section
    summary = text[text.index("- **Published reference**"):].splitlines()[0]
    assert "is not in this study" in summary and "not whether it holds" in summary and "Other laws:" in summary
    assert "- Which law's form holds at the reference's cell, 128 × 80 epochs" in text
    assert "Reproduction" not in text


@pytest.mark.parametrize("recipe, reason", [
    ({"batch_size": 256}, "differ from the reference's recipe in batch_size: 512 (reference: 256)"),
    ({"train_subset": None, "label_smoothing": 0.2}, "label_smoothing: not in the records (reference: 0.2)"),
    ({}, "states no recipe to match the runs against"),
])
def test_a_study_off_the_reference_recipe_does_not_predict_its_cell(setup, recipe, reason):
    a = analyse(setup, n_boot=20, reference=_reference(recipe))
    r = a.reference_check
    assert r.prediction is None and not r.predictions() and reason in r.reason
    text = render(a)
    assert "Its cell is not predicted either: " in text and "**Published reference**" not in text


def test_recipe_fields_match_across_types():
    """Records hold numbers and booleans as the JSON gave them, and a missing subset as None or NaN."""
    frame = pd.DataFrame({"status": ["ok", "ok", "failed"], "lr": [0.003, 0.003, 0.5], "tta": [True, True, False],
                          "config.train_subset": [None, float("nan"), 4096], "data": ["cifar10"] * 3})
    reference = _reference({"lr": 0.003, "tta": True, "train_subset": None, "data": "cifar10"})
    assert recipe_differences(reference, frame) == []  # the failed run is not the study's recipe
    frame.loc[1, "lr"] = 0.004
    assert recipe_differences(_reference({"lr": 0.003}), frame) == ["lr: 0.004 (reference: 0.003)"]


def test_no_checks_file_means_no_checks(tmp_path):
    assert read_checks(tmp_path) == []


def test_grid_from_a_study_file_counts_done_pending_failed_diverged(tmp_path):
    records = grid_records(true_error, widths=(8, 16), epochs=(3, 5), seeds=2, study="mine")
    records = [r for r in records if not (r["config"]["width"] == 16 and r["config"]["epochs"] == 5)]
    records += [make_record(width=16, epochs=5, seed=0, status="failed", study="mine"),
                make_record(width=8, epochs=10, seed=0, status="diverged", study="mine")]
    write_records(tmp_path, records)
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "abc.lock").write_text("{}")
    grid_file = tmp_path / "mine.toml"
    grid_file.write_text('name = "mine"\n[grid]\nwidth = [8, 16]\nepochs = [3, 5, 10]\nseed = [0, 1]\n')
    status = grid_status(tmp_path, load(tmp_path, include_failed=True).frame, grid_file)
    assert not status.inferred and str(grid_file) in status.source and status.running == 1
    assert status.totals == {"expected": 12, "ok": 6, "failed": 1, "diverged": 1, "pending": 4}
    assert status.provisional
    assert status.missing() == ["8×10 (1 diverged, pending)", "16×5 (1 failed, pending)", "16×10 (pending)"]


def test_grid_is_inferred_without_a_study_file_and_says_so(tmp_path):
    write_records(tmp_path, grid_records(true_error, widths=(8, 16), epochs=(3, 5), seeds=2, study=None)[:-1])
    status = grid_status(tmp_path, load(tmp_path, include_failed=True).frame)
    assert status.inferred and "cartesian product" in status.source
    assert status.totals["pending"] == 1 and status.provisional
    with pytest.raises(AnalysisError, match="does not describe these records"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[grid]\nwidth = [8]\nepochs = [3, 5]\nseed = [0, 1]\n")
        grid_status(tmp_path, load(tmp_path, include_failed=True).frame, bad)


def _checks_toml(cells) -> str:
    return "".join(f'[[check]]\nname = "{w} x {e} {folder}"\nrecords = "../{folder}"\nwidth = {w}\nepochs = {e}\n\n'
                   for folder, w, e in cells)


def test_the_joint_test_is_the_sum_of_squared_zs_when_the_predictions_are_uncorrelated():
    """With uncorrelated predictions C is diagonal: χ² is the sum of each check's z², and the common offset is the
    inverse-variance mean of the residuals, each variance being se_pred² + seed_sd²/n as in the check's own z."""
    from analysis.checks import Check
    from analysis.joint import _joint
    s, seed_sd = 0.004, 0.006
    draws = s * np.array([[1, 1], [-1, 1], [1, -1], [-1, -1]], dtype=float)  # sample covariance exactly diagonal
    var_pred = s**2 * 4 / 3
    checks = (Check("a", None, 8, 40), Check("b", None, 64, 3))
    joint = _joint("law", checks, np.array([-0.010, 0.004]), np.array([seed_sd**2 / 3, seed_sd**2]), draws, ())
    variances = np.array([var_pred + seed_sd**2 / 3, var_pred + seed_sd**2 / 1])
    residuals = np.array([-0.010, 0.004])
    assert joint.chi2 == pytest.approx(float(np.sum(residuals**2 / variances)))
    assert joint.p == pytest.approx(float(np.exp(-joint.chi2 / 2)))  # χ² on 2 dof: survival e^(−x/2)
    weights = 1 / variances
    assert joint.offset == pytest.approx(float(np.sum(weights * residuals) / np.sum(weights)))
    assert joint.offset_se == pytest.approx(float(np.sum(weights) ** -0.5))
    assert joint.max_corr == pytest.approx(0.0, abs=1e-12) and joint.k == 2


def _joint_trial(root, trial: int, shift: float, cells=((64, 10), (8, 40), (64, 3))):
    """A fresh study drawn from `true_error`, separable fitted, and three runs per check cell `shift` off the truth."""
    study = root / f"study-{trial}"
    write_records(study, grid_records(true_error, widths=(8, 16, 24, 32), epochs=(3, 5, 10, 20), seeds=3, sd=0.002,
                                      seed=1000 + trial, study="grid"))
    rng = np.random.default_rng(trial)
    write_records(root / f"checks-{trial}", [
        make_record(width=w, epochs=e, seed=s, study="checks",
                    ema_val_acc=float(1 - true_error(num_params_of(w), e) + shift + rng.normal(0, 0.002)))
        for w, e in cells for s in range(3)])
    (study / "checks.toml").write_text(_checks_toml([(f"checks-{trial}", w, e) for w, e in cells]))
    frame = load(study, include_failed=True).frame
    fit = fit_law(frame, "separable", n_boot=60, seed=trial)
    results = [run_check(c, fit, width_sizes(frame), frame) for c in read_checks(study)]
    [joint] = joint_checks(results, (fit,))
    return joint


def test_the_joint_test_holds_its_size_when_the_law_is_true_and_finds_a_shared_shortfall(tmp_path):
    """Forty studies drawn from a separable truth, each with three checks on the truth: the joint test rejects at
    about its 5% level, and its p-values spread like a uniform's. The same checks 1 point low are rejected almost
    always, with the offset's interval below zero."""
    null = [_joint_trial(tmp_path, k, 0.0) for k in range(40)]
    p = np.array([j.p for j in null])
    assert sum(j.misses for j in null) <= 6, p  # binomial(40, 0.05): P(≥ 7) ≈ 0.003
    assert 0.35 < p.mean() < 0.65, p  # a uniform's mean ± 3.3 SE
    assert sum(j.offset_ci[0] <= 0 <= j.offset_ci[1] for j in null) >= 34  # the offset's 95% CI covers 0
    shifted = [_joint_trial(tmp_path, 100 + k, -0.01) for k in range(10)]
    assert sum(j.misses for j in shifted) >= 9 and all(j.offset_ci[1] < 0 for j in shifted)


def test_a_shared_shortfall_is_rejected_with_a_negative_offset_and_the_report_says_what_was_left_out(tmp_path):
    """Three checks 1.5 points below a separable truth, and a fourth cell with only a bf16 run: the chosen law is
    rejected, overstating the checks as a whole; the bf16 cell is not taken and the report says why."""
    study = tmp_path / "study"
    write_records(study, grid_records(true_error, widths=(8, 16, 24, 32), epochs=(3, 5, 10, 20), seeds=3, sd=0.002,
                                      seed=1, study="grid", config={"precision": "fp32"}, precision="fp32"))
    cells = ((64, 10), (8, 40), (64, 3))
    rng = np.random.default_rng(7)
    write_records(tmp_path / "low", [
        make_record(width=w, epochs=e, seed=s, study="low", config={"precision": "fp32"}, precision="fp32",
                    ema_val_acc=float(1 - true_error(num_params_of(w), e) - 0.015 + rng.normal(0, 0.002)))
        for w, e in cells for s in range(3)])
    write_records(tmp_path / "bf16", [make_record(width=16, epochs=40, seed=0, study="bf16",
                                                  config={"precision": "bf16"}, precision="bf16")])
    (study / "checks.toml").write_text(_checks_toml([("low", w, e) for w, e in cells] + [("bf16", 16, 40)]))
    a = analyse(study, n_boot=60, laws=("separable",))
    [j] = a.joint
    assert [(c.width, c.epochs) for c in j.checks] == list(cells)
    assert j.misses and j.offset_ci[1] < 0 and j.offset == pytest.approx(-0.015, abs=0.004)
    assert [(c.width, why) for c, why in j.left_out] == [(16, "no like-for-like records")]
    text = render(a)
    assert "### All checks together" in text and "| separable (chosen) | 64 × 10, 8 × 40, 64 × 3 |" in text
    assert "| 16 × 40: no like-for-like records |" in text
    summary = text[text.index("- **Checks together**"):].splitlines()[0]
    assert "they reject it" in summary and "the law overstates them as a whole" in summary


def test_what_the_summary_says_of_the_checks_together():
    from analysis.joint import JointCheck
    from analysis.report.summary import _joint_text

    def joint(law, p, offset, k=3):
        return JointCheck(law, (None,) * k, (), 1.0, p, offset, 0.001, 0.5)

    def text(chosen, *joints):
        study = SimpleNamespace(fit=SimpleNamespace(name=chosen), joint=list(joints))
        study.joint_chosen_first = lambda: sorted(study.joint, key=lambda j: j.law != chosen)
        return _joint_text(study)

    said = text("b", joint("a", 0.001, 0.01), joint("b", 0.4, -0.001), joint("c", 0.2, 0.0, k=2))
    assert said.startswith("under the chosen b law the 3 checks give χ² = 1.00 on 3 dof (p = 0.4): consistent with "
                           "it; their common offset, observed − predicted, is -0.10 points (95% CI [-0.30, +0.10]): "
                           "no systematic lean.")
    assert said.endswith(" Together they reject a (p = 0.001, 3 checks). They do not reject c (p = 0.2, 2 checks).")
    assert "the law understates them as a whole" in text("a", joint("a", 0.01, 0.005))
    assert "they reject it; " in text("a", joint("a", 0.01, -0.005)) and "overstates" in text("a", joint("a", 0.01, -0.005))
    assert text("d", joint("a", 0.3, 0.0)) == ("the chosen d law predicts fewer than two of the observed checks. "
                                               "They do not reject a (p = 0.3, 3 checks).")
