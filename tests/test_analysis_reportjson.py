"""report.json: written by `analysis report` beside report.md, its numbers equal to the analysis objects the report
renders, strict JSON, and never read back as a run record."""
from __future__ import annotations

import json
import math

import pytest

from analysis import load
from analysis.report import report
from analysis.study import analyse
from analysis.testing import grid_records, make_record, write_records

N_BOOT = 8


def true_error(n, e):
    return 0.03 + 57 * n**-0.5 + 0.05 * e**-0.8


def _strict(text: str):
    def refuse(token):
        raise AssertionError(f"report.json holds the non-strict token {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    base = tmp_path_factory.mktemp("reportjson")  # its own folder: "../elsewhere" must not meet another test's
    directory = base / "study"
    write_records(directory, grid_records(true_error, widths=(32, 64, 96), epochs=(10, 20, 40), seeds=3, sd=0.0014,
                                          study="grid"))
    elsewhere = directory.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "w128.json").write_text(json.dumps(make_record(width=128, epochs=40, seed=0, ema_val_acc=0.955)))
    (directory / "checks.toml").write_text('[[check]]\nname = "width 128"\nrecords = "../elsewhere"\n'
                                           'width = 128\nepochs = 40\n')
    report(directory, n_boot=N_BOOT)
    return directory


def test_report_json_holds_the_reports_numbers(study):
    data = _strict((study / "report.json").read_text())
    a = analyse(study, n_boot=N_BOOT)  # same seed and draws: the same numbers the report was made from
    assert data["study"] == "grid" and data["metric"] == "ema_val_acc" and data["runs"]["ok"] == 27
    assert len(data["cells"]) == 9
    for row, (_, cell) in zip(data["cells"], a.table.iterrows()):
        assert (row["width"], row["epochs"], row["n"]) == (cell["width"], cell["epochs"], cell["n"])
        assert row["mean"] == pytest.approx(cell["mean"]) and row["ci_low"] == pytest.approx(cell["ci_low"])
    assert data["chosen_law"] == a.choice.chosen
    chosen = next(law for law in data["laws"] if law["chosen"])
    fit = a.fit
    assert chosen["name"] == fit.name and set(chosen["parameters"]) == set(fit.params)
    for name, value in fit.params.items():
        got = chosen["parameters"][name]
        assert got["estimate"] == pytest.approx(value)
        assert got["ci95"] == pytest.approx(list(fit.intervals[name]))
        assert got["identified"] == (name not in fit.not_identified)
    assert chosen["lack_of_fit"]["chi2_per_dof"] == pytest.approx(fit.chi2_per_dof)
    assert chosen["lack_of_fit"]["p"] == pytest.approx(fit.lack_of_fit_p)
    assert chosen["cv"]["rmse_points"] == pytest.approx(a.choice.scores[fit.name].rmse)
    [check] = data["checks"]
    assert check["width"] == 128 and check["n_all"] == 1
    assert check["z_all"] == pytest.approx(a.checks[0].z_all) and math.isfinite(check["z_all"])
    assert check["prediction"]["predicted_acc"] == pytest.approx(a.checks[0].prediction.predicted_acc)
    assert [j["law"] for j in data["checks_together"]] == [j.law for j in a.joint_chosen_first()]
    held = [h for h in data["held_out"] if h["computed"]]
    assert held and all(isinstance(c["z"], float) for h in held for c in h["cells"])
    assert data["figures"] and all((study / f).is_file() for f in data["figures"])


def test_report_json_is_not_read_as_a_record_and_the_report_does_not_change(study):
    before = (study / "report.md").read_text()
    loaded = load(study)
    assert loaded.n_files == 27 and not loaded.incompatible, "report.json must not count as a (bad) record"
    report(study, n_boot=N_BOOT)
    assert (study / "report.md").read_text() == before


def test_a_study_without_a_law_still_gets_a_report_json(tmp_path):
    write_records(tmp_path, [make_record(width=64, epochs=10, seed=s, study="one") for s in range(2)])
    report(tmp_path, n_boot=N_BOOT)
    data = _strict((tmp_path / "report.json").read_text())
    assert data["chosen_law"] is None and len(data["cells"]) == 1
    assert data["laws"] and all(not law["fitted"] and "not enough" in law["reason"] for law in data["laws"])
