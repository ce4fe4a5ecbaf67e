"""Predictions: sizes at new widths against the committed records, the law choice by CV, predict_cell's
intervals, and the `predict` command's text and JSON contract."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import cell_table, choose_law, cross_validate, fit_law, load, predict_cell, width_sizes
from analysis.cli import main
from analysis.predict import JSON_KEYS
from analysis.testing import grid_records, write_records

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def true_error(n, e):
    return 0.04 + 60 * n**-0.5 + 0.3 * e**-0.8


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    directory = tmp_path_factory.mktemp("study")
    write_records(directory, grid_records(true_error, widths=(8, 16, 24, 32), epochs=(3, 5, 10, 20), seeds=3,
                                          sd=0.002, seed=11, study="grid"))
    return directory


def test_sizes_at_width_64_from_widths_8_to_32_match_the_committed_w64_records():
    """num_params and forward FLOPs are exact quadratics in width: widths 8, 16, 32 (results/quick) give the
    width-64 values that results/cpu-headline recorded."""
    sizes = width_sizes(load(RESULTS / "quick").frame)
    headline = load(RESULTS / "cpu-headline").frame  # seed 0 directly in the folder, later seeds under runs/
    assert len(headline) >= 2 and set(headline["width"]) == {64}
    for column in ("num_params", "forward_flops_per_image"):
        value, source = sizes.value(column, 64)
        assert value == pytest.approx(float(headline[column].iloc[0]), rel=1e-12), column
        assert source.startswith("quadratic in width fitted to widths 8, 16, 32 (exact")
        assert sizes.misfit[column] < 1e-9
    assert sizes.value("num_params", 16) == (float(load(RESULTS / "quick").frame.query("width == 16")["num_params"]
                                                  .iloc[0]), "records")
    # training FLOPs per epoch = 3 × forward × images trained per epoch (whole batches of 512: 8 of the first
    # 4,096 images in quick; 97 of CIFAR-10's 50,000, the partial last batch dropped), so also a quadratic
    quick = load(RESULTS / "quick").frame
    assert np.allclose(quick["flops_per_epoch"] / quick["forward_flops_per_image"], 3 * 8 * 512)
    assert np.allclose(headline["flops_per_epoch"] / headline["forward_flops_per_image"], 3 * 97 * 512)


def test_cross_validation_predicts_every_cell_and_choice_follows_the_one_se_rule(study):
    cells = cell_table(load(study).frame)
    score = cross_validate(cells, "separable")
    assert score.complete and np.isfinite(score.predicted).all() and score.rmse < 0.5
    choice = choose_law(cells, n_boot=8)
    assert choice.chosen in choice.scores and choice.fit is choice.fits[choice.chosen]
    eligible = {n: s for n, s in choice.scores.items() if s.complete}
    best = min(eligible.values(), key=lambda s: s.mse)
    chosen = choice.scores[choice.chosen]
    assert chosen.mse <= best.mse + best.mse_se
    assert all(s.n_params >= chosen.n_params for s in eligible.values() if s.mse <= best.mse + best.mse_se)


def test_predict_cell_outside_the_data_has_wider_intervals(study):
    frame = load(study).frame
    fit = fit_law(frame, "separable", n_boot=60)
    sizes = width_sizes(frame)
    inside = predict_cell(fit, sizes, 16, 10, study="grid")
    outside = predict_cell(fit, sizes, 64, 10, study="grid")
    assert not inside.extrapolated and outside.extrapolated and "width 64 outside" in outside.extrapolation
    assert outside.num_params_source.startswith("quadratic in width")
    for p in (inside, outside):
        assert p.ci95[0] <= p.predicted_acc <= p.ci95[1] and p.pi95[0] < p.ci95[0] and p.ci95[1] < p.pi95[1]
        assert p.pi95[1] - p.predicted_acc == pytest.approx(1.959964 * np.hypot(p.se_pred, p.seed_sd))
    assert outside.se_pred > inside.se_pred
    truth = 1 - true_error(sizes.value("num_params", 64)[0], 10)
    assert outside.pi95[0] <= truth <= outside.pi95[1]


def test_predict_cli_json_contract(study, capsys):
    assert main(["predict", str(study), "--width", "64", "--epochs", "10", "--format", "json", "--n-boot", "20"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert tuple(out) == JSON_KEYS
    assert out["study"] == "grid" and out["width"] == 64 and out["epochs"] == 10 and out["extrapolated"] is True
    assert out["law"] != "per_width"  # it has no curve for a width it never saw
    assert 0 < out["predicted_acc"] < 1 and out["n_runs"] == 48 and out["n_cells"] == 16
    assert out["ci95"][0] <= out["predicted_acc"] <= out["ci95"][1] and out["pi95"][0] < out["ci95"][0]
    assert isinstance(out["not_identified"], list) and isinstance(out["provisional"], bool)


def test_predict_cli_text_and_bad_input(study, capsys, tmp_path):
    assert main(["predict", str(study), "--width", "16", "--epochs", "10", "--law", "per_width", "--n-boot", "10"]) == 0
    text = capsys.readouterr().out
    assert "width 16 × 10 epochs, per_width law" in text and "95% prediction interval" in text
    for argv, message in (
        (["--width", "64", "--epochs", "10", "--law", "per_width"], "no curve for width 64"),
        (["--width", "0", "--epochs", "10"], "is not positive"),
        (["--width", "64"], "required: --epochs"),
    ):
        assert main(["predict", str(study), *argv, "--n-boot", "4"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    tiny = tmp_path / "tiny"
    write_records(tiny, grid_records(true_error, widths=(8, 16), epochs=(3, 5), seeds=1))
    assert main(["predict", str(tiny), "--width", "64", "--epochs", "10", "--format", "json"]) == 2
    assert "no law can be fitted" in capsys.readouterr().err


def test_python_m_analysis_predict_runs_as_a_subprocess(study):
    """How studies' adaptive scheduler calls it: a subprocess, JSON on stdout."""
    run = subprocess.run([sys.executable, "-m", "analysis", "predict", str(study), "--width", "32", "--epochs", "20",
                          "--law", "separable", "--format", "json", "--n-boot", "10"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["law"] == "separable"


def test_predict_and_fit_with_more_folders_pool_runs_of_the_same_recipe(study, capsys, tmp_path):
    """--with adds a folder's runs to the fit (a check's, once used): its cell is in-sample then, a run found in two
    folders counts once, and a folder of another recipe is refused in one line."""
    extra = tmp_path / "extra"
    write_records(extra, grid_records(true_error, widths=(64,), epochs=(10,), seeds=3, sd=0.002, seed=5, study="more"))
    write_records(extra / "again", grid_records(true_error, widths=(8,), epochs=(3,), seeds=3, sd=0.002, seed=11,
                                                study="grid"))  # the study's own 8 x 3 runs, copied: not new runs
    argv = ["predict", str(study), "--width", "64", "--epochs", "10", "--n-boot", "20", "--law", "separable"]
    assert main([*argv, "--format", "json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main([*argv, "--format", "json", "--with", str(extra)]) == 0
    pooled = json.loads(capsys.readouterr().out)
    assert (pooled["n_runs"], pooled["n_cells"]) == (alone["n_runs"] + 3, alone["n_cells"] + 1) == (51, 17)
    assert pooled["study"] == "grid + grid, more" and alone["extrapolated"] and not pooled["extrapolated"]
    assert pooled["se_pred"] < alone["se_pred"]  # runs at the cell itself pin it down
    assert main([*argv, "--with", str(extra)]) == 0
    assert capsys.readouterr().out.startswith(f"note: fitted to 51 runs, {study}'s and those under {extra}: ")
    assert main(["fit", str(study), "--law", "separable", "--n-boot", "10", "--with", str(extra)]) == 0
    assert "51 runs in 17 cells" in capsys.readouterr().out
    other = tmp_path / "other"
    write_records(other, grid_records(true_error, widths=(64,), epochs=(10,), seeds=1, study="more",
                                      config={"precision": "bf16"}, precision="bf16"))
    assert main([*argv, "--with", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "differ in precision" in err and "pools runs of one recipe only" in err
    assert len(err.splitlines()) == 1
    assert main([*argv, "--with", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
