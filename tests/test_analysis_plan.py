"""`python -m analysis plan`: the cells not yet run, their cost, the laws' predictions and what runs would tell."""
import math

import numpy as np
import pytest

from analysis import analyse
from analysis.cli import main
from analysis.plan import _share, plan_cells
from analysis.predict import predict_acc
from analysis.testing import grid_records, make_record, write_records


def true_error(n, e):
    return 0.04 + 60 * n**-0.5 + 0.3 * e**-0.8


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    write_records(root / "study", grid_records(true_error, widths=(8, 16, 32), epochs=(3, 5, 10, 20), rel_sd=0.03, seed=4))
    write_records(root / "check", [make_record(width=64, epochs=10, seed=s, study="check") for s in range(2)])
    (root / "study" / "checks.toml").write_text('[[check]]\nname = "64 x 10"\nrecords = "../check"\nwidth = 64\n'
                                                 'epochs = 10\n')
    return analyse(root / "study", n_boot=60, laws=("separable", "interaction"))


def test_candidates_are_the_cells_not_run_cheapest_first_with_their_cost(study):
    cells = plan_cells(study, [8, 64], [10, 40], runs=2, target=(64, 40))
    assert [(c.width, c.epochs) for c in cells] == [(8, 40), (64, 10), (64, 40)]  # 8 × 10 is in the study
    assert [c.flops for c in cells] == sorted(c.flops for c in cells)
    per_epoch = study.sizes.value("flops_per_epoch", 64)[0]
    assert cells[1].flops == pytest.approx(2 * 10 * per_epoch)
    assert math.isfinite(cells[1].hours) and cells[1].hours > 0
    assert cells[1].note == "a check: 2 like-for-like run(s) in check" and cells[0].note == ""


def test_separation_and_the_target_share_follow_their_formulas(study):
    chosen = study.choice.for_width(64, study.cells.width)[0]
    [cell] = [c for c in plan_cells(study, [64], [40], runs=3, target=(64, 40))]
    mean, se = cell.predictions[chosen.name]
    assert cell.seed_sd == pytest.approx(chosen.seed_rel_sd * (1 - mean))
    for law, value in cell.separation.items():
        m, s = cell.predictions[law]
        assert value == pytest.approx(abs(m - mean) / math.sqrt(se**2 + s**2 + cell.seed_sd**2 / 3))
    # the candidate IS the target: the runs remove Var / (Var + noise) of its variance
    draws = predict_acc(chosen, study.sizes.value("num_params", 64)[0], 40, 64)[1][:, 0]
    var = np.var(draws, ddof=1)
    assert cell.target_share == pytest.approx(var / (var + cell.seed_sd**2 / 3))
    assert _share(draws, -draws, 0.0) == pytest.approx(1.0) and _share(draws, np.zeros_like(draws) + 0.9, 1e-6) == 0


def test_the_command_prints_the_table_and_refuses_bad_lists(study, capsys):
    assert main(["plan", str(study.directory), "--widths", "16,64", "--epochs", "40", "--n-boot", "40"]) == 0
    out = capsys.readouterr().out
    assert "| 16 × 40 | 3 |" in out and "| 64 × 40 | 3 |" in out and "share of 128 × 80's variance removed" in out
    assert main(["plan", str(study.directory), "--widths", "16,x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'x' is not a number" in err[0]
