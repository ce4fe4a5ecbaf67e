"""`python -m analysis calibrate-checks`: the joint test's size and power on a study, by parametric bootstrap."""
import json

import pytest

from analysis import analyse
from analysis.cli import main
from analysis.bench.calibrate_checks import calibrate_joint, write_joint_calibration
from analysis.testing import grid_records, write_records

CELLS = ((64, 10), (8, 40), (64, 3))


def true_error(n, e):
    return 0.04 + 60 * n**-0.5 + 0.3 * e**-0.8


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 4 × 4 grid and three checks of three runs each, all from `true_error` with SD 3% of the error."""
    root = tmp_path_factory.mktemp("joint")
    write_records(root / "study", grid_records(true_error, widths=(8, 16, 24, 32), epochs=(3, 5, 10, 20), rel_sd=0.03,
                                               seed=3, study="grid"))
    write_records(root / "checks", [r for k, (w, e) in enumerate(CELLS) for r in grid_records(
        true_error, widths=(w,), epochs=(e,), rel_sd=0.03, seed=30 + k, study="checks")])
    (root / "study" / "checks.toml").write_text("".join(
        f'[[check]]\nname = "{w} x {e}"\nrecords = "../checks"\nwidth = {w}\nepochs = {e}\n\n' for w, e in CELLS))
    return root / "study"


def test_the_joint_test_holds_its_size_under_its_own_law_and_finds_a_large_shortfall(study, tmp_path):
    analysis = analyse(study, n_boot=60, laws=("separable",))
    result = calibrate_joint(analysis, n_studies=40, n_boot=60, shifts=(-3.0,), seed=1)
    s = result.summary()
    assert s["law"] == "separable" and s["studies"] == 40 and s["failed"] == 0
    assert [c["runs"] for c in s["checks"]] == [3, 3, 3]
    null, shifted = s["shifts"]["+0"], s["shifts"]["-3"]
    assert null["rejected"] <= 6  # binomial(40, 0.05): P(≥ 7) ≈ 0.003
    assert 1.5 < null["mean_chi2"] < 5.0 and null["dof"] == 3  # χ² on 3 dof: mean 3, SE of a 40-mean ≈ 0.4
    assert null["offset_ci_covers_shift"] >= 0.8
    assert shifted["rejected"] == 40 and shifted["offset_mean_points"] == pytest.approx(-3.0, abs=0.3)
    assert 0 < s["observed"]["p_simulated"] <= 1 and s["observed"]["chi2"] == analysis.joint[0].chi2
    json_path, md_path = write_joint_calibration(result, tmp_path, "python -m analysis calibrate-checks X")
    assert json.loads(json_path.read_text())["shifts"]["-3"]["rejected"] == 40
    text = md_path.read_text()
    assert "| -3 | 40 / 40 | 100.0% |" in text and "(not measurements)" in text


def test_the_command_writes_its_files_and_refuses_a_study_without_checks(study, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["calibrate-checks", str(study), "--studies", "4", "--n-boot", "20", "--shift", "-1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "shift -1 points: rejected" in printed and (out / "joint-calibration.md").is_file()
    bare = tmp_path / "bare"
    write_records(bare, grid_records(true_error, widths=(8, 16, 32), epochs=(3, 10, 20), seeds=2, sd=0.002))
    assert main(["calibrate-checks", str(bare), "--studies", "2", "--n-boot", "20", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fewer than two observed checks" in err[0] and "checks.toml" in err[0]
