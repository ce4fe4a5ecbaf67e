"""compare: Welch's test against scipy, the published reference file, and clear messages for too few runs."""
import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

from analysis import (AnalysisError, Comparison, NotEnoughPointsError, compare, compare_cell, load,
                      load_reference)
from analysis.reference import DEFAULT_REFERENCE
from analysis.testing import make_record, write_records
from analysis.tost_power import runs_needed

PUBLISHED = [95.72, 95.83, 95.76, 95.99, 95.72, 95.66, 95.53]


def test_reference_file_holds_the_published_numbers_as_fractions():
    reference = load_reference()
    assert reference.published_values == tuple(PUBLISHED) and reference.units == "percent"
    assert reference.values == pytest.approx([v / 100 for v in PUBLISHED])
    assert (reference.width, reference.epochs, reference.n) == (128, 80, 7)
    assert np.mean(reference.values) == pytest.approx(0.95744, abs=1e-5)
    assert "PUBLISHED" in reference.note and "v0.3.0" in reference.source and reference.hardware == "A100"


def test_reference_recipe_is_the_trainers_default_recipe():
    """The reference file's recipe (what a study must share to predict its cell) is TrainConfig's defaults, which
    are the seed's values (speedrun/README.md, "The recipe"): a changed default must change the file, or studies
    would be matched wrongly."""
    from speedrun import TrainConfig  # the test may see both packages; analysis itself imports neither
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    recipe = load_reference().recipe
    assert recipe and {k: defaults[k] for k in recipe} == recipe
    left_out = {"width", "epochs", "seed", "precision", "device", "eval_every", "whiten_method",
                "compile", "cuda_graph", "threads", "data_dir", "eval_batch_size"}
    assert set(defaults) - set(recipe) == left_out


def test_welch_matches_scipy():
    reference = load_reference()
    ours = [0.9561, 0.9549, 0.9580, 0.9555]
    result = compare(ours, reference)
    expected = stats.ttest_ind(ours, reference.values, equal_var=False)
    assert isinstance(result, Comparison)
    assert result.t == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.df == pytest.approx(expected.df)
    low, high = expected.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert result.difference == pytest.approx(np.mean(ours) - np.mean(reference.values))
    assert result.n == 4 and result.reference_n == 7
    assert "Welch" in result.summary()


def test_plain_sequences_and_unit_mismatch():
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 3.5, 6.0, 7.0]
    assert compare(a, b).p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    with pytest.raises(AnalysisError, match="units"):
        compare([0.95, 0.96], PUBLISHED)


def test_one_run_is_not_enough():
    with pytest.raises(NotEnoughPointsError, match="need ≥2 runs in our cell, have 1"):
        compare([0.957], load_reference())


def test_compare_cell_picks_the_reference_cell(tmp_path):
    write_records(tmp_path, [make_record(width=128, epochs=80, seed=s, ema_val_acc=0.955 + 0.001 * s)
                             for s in range(3)] + [make_record(width=64, epochs=10, ema_val_acc=0.91)])
    frame = load(tmp_path).frame
    result = compare_cell(frame)
    assert result.n == 3 and result.mean == pytest.approx(0.956)
    with pytest.raises(AnalysisError, match=r"cells present \(width, epochs\): \[\(64, 10\), \(128, 80\)\]"):
        compare_cell(frame, width=96, epochs=80)


def test_reference_file_errors(tmp_path):
    with pytest.raises(AnalysisError, match="not found"):
        load_reference(tmp_path / "missing.json")
    wrong = json.loads(DEFAULT_REFERENCE.read_text())
    wrong["mean"] = 90.0
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(wrong))
    with pytest.raises(AnalysisError, match="stated mean"):
        load_reference(path)


def test_tost_matches_two_one_sided_welch_tests_from_scipy():
    reference = load_reference()
    ours = [0.9571, 0.9580, 0.9566, 0.9577, 0.9569, 0.9583, 0.9574, 0.9578]
    margin = 0.002
    result = compare(ours, reference, margin=margin)
    # H0: diff ≤ −margin (reject with a large mean shifted up) and H0: diff ≥ +margin
    lower = stats.ttest_ind(np.array(ours) + margin, reference.values, equal_var=False, alternative="greater")
    upper = stats.ttest_ind(np.array(ours) - margin, reference.values, equal_var=False, alternative="less")
    assert result.tost_p == pytest.approx(max(lower.pvalue, upper.pvalue))
    assert result.equivalent == (result.tost_p < 0.05)
    # the TOST verdict equals "the 90% Welch interval lies inside ±margin"
    low, high = stats.ttest_ind(ours, reference.values, equal_var=False).confidence_interval(0.90)
    assert result.equivalent == (-margin < low and high < margin)
    assert result.verdict.startswith("reproduced" if result.equivalent else "not")


def test_no_significant_difference_is_not_a_reproduction():
    reference = load_reference()
    few = [0.9560, 0.9595]  # two noisy runs: Welch finds nothing, and nothing is shown either
    result = compare(few, reference, margin=0.002)
    assert result.p_value > 0.05 and not result.equivalent
    assert result.verdict.startswith("not shown to reproduce") and "more runs needed" in result.verdict
    far = compare([0.9500, 0.9502, 0.9498], reference, margin=0.002)
    assert far.verdict.startswith("not reproduced: the difference is significant")
    wide = compare(few, reference, margin=0.02)  # a loose margin can be met by the same data
    assert wide.equivalent and "±2 points" in wide.verdict
    with pytest.raises(AnalysisError, match="equivalence margin"):
        compare(few, reference, margin=0.0)
    assert compare(few, reference).margin is None and compare(few, reference).verdict == ""


def test_an_undecided_reproduction_says_how_many_runs_of_ours_would_decide_it(tmp_path, capsys):
    """Against the published runs, which cannot grow: runs of ours against the reference as it is."""
    from analysis.cli import main
    reference = load_reference()
    few = [0.9560, 0.9595]
    write_records(tmp_path, [make_record(width=reference.width, epochs=reference.epochs, seed=s, ema_val_acc=v)
                             for s, v in enumerate(few)])
    assert main(["compare", str(tmp_path)]) == 0
    needed = runs_needed(compare(few, reference, margin=0.002), reference_fixed=True)
    assert needed.as_seen is None or needed.as_seen > 2
    assert f"to decide it: {needed.text()}\n" in capsys.readouterr().out
    assert needed.text().startswith("runs of ours against the reference as it is")


def test_compare_against_another_folder_of_records(tmp_path, capsys):
    """`compare DIR --against OTHER`: one cell of two folders (bf16 runs against fp32 runs of one recipe), Welch
    and TOST on exactly those runs, with a verdict in the words of equivalence, not reproduction."""
    from analysis.cli import EXIT_BAD_INPUT, main
    bf16, fp32 = [0.9050, 0.9041, 0.9046], [0.9053, 0.9043, 0.9038]
    write_records(tmp_path / "bf16", [make_record(width=16, epochs=10, seed=s, ema_val_acc=v) for s, v in enumerate(bf16)]
                  + [make_record(width=8, epochs=10, ema_val_acc=0.80)])
    write_records(tmp_path / "fp32", [make_record(width=16, epochs=10, seed=s, ema_val_acc=v) for s, v in enumerate(fp32)])
    expected = compare(bf16, fp32, margin=0.002)
    assert main(["compare", str(tmp_path / "bf16"), "--against", str(tmp_path / "fp32"), "--width", "16",
                 "--epochs", "10"]) == 0
    out = capsys.readouterr().out
    assert f"difference {100 * expected.difference:+.3f} pp" in out and "(n=3)" in out
    assert expected.equivalent and f"equivalent within ±0.2 points (TOST p = {expected.tost_p:.2g})" in out
    assert "reproduced" not in out
    assert main(["compare", str(tmp_path / "bf16"), "--against", str(tmp_path / "fp32"), "--width", "16",
                 "--epochs", "10", "--margin", "0.01"]) == 0
    out = capsys.readouterr().out  # 3 runs a side cannot show equivalence within ±0.01 points
    needed = runs_needed(compare(bf16, fp32, margin=0.0001))
    assert "undecided" in out and f"to decide it: {needed.text()}\n" in out and "runs a side" in out
    assert main(["compare", str(tmp_path / "bf16"), "--against", str(tmp_path / "fp32"), "--width", "8",
                 "--epochs", "10"]) == EXIT_BAD_INPUT
    assert "no ok runs at width=8, epochs=10; cells present (width, epochs): [(16, 10)]" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "bf16"), "--against", str(tmp_path / "fp32")]) == EXIT_BAD_INPUT
    assert "give --width and --epochs" in capsys.readouterr().err


def test_a_cell_that_mixes_precisions_is_one_sample_only_when_a_precision_is_picked(tmp_path, capsys):
    """A folder that holds fp32 and bf16 runs of one cell (cpu-headline does) is not one sample: compare refuses
    it with a line that names the precisions, and --precision / --against-precision keep one of them."""
    from analysis.cli import EXIT_BAD_INPUT, main

    def run(seed, value, precision):
        return make_record(width=64, epochs=10, seed=seed, ema_val_acc=value, precision=precision,
                           config={"precision": precision})
    fp32, bf16 = [0.9393, 0.9405, 0.9392], [0.9407, 0.9420, 0.9401]
    write_records(tmp_path / "mixed", [run(s, v, "fp32") for s, v in enumerate(fp32)] + [run(0, 0.9700, "bf16")])
    write_records(tmp_path / "bf16", [run(s, v, "bf16") for s, v in enumerate(bf16)])
    cell = ["--width", "64", "--epochs", "10"]
    assert main(["compare", str(tmp_path / "bf16"), "--against", str(tmp_path / "mixed"), *cell]) == EXIT_BAD_INPUT
    assert "ran in more than one precision (bf16 ×1, fp32 ×3)" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "bf16"), "--against", str(tmp_path / "mixed"), *cell,
                 "--against-precision", "fp32"]) == 0
    out = capsys.readouterr().out
    expected = compare(bf16, fp32, margin=0.002)  # the stray bf16 run at 97% is not in the fp32 sample
    assert f"against {tmp_path / 'mixed'} (fp32) at width 64" in out
    assert f"difference {100 * expected.difference:+.3f} pp" in out and "(n=3)" in out
    assert main(["compare", str(tmp_path / "mixed"), *cell, "--precision", "fp16"]) == EXIT_BAD_INPUT
    assert "no ok runs in fp16 at width=64, epochs=10; precisions there: bf16, fp32" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "mixed"), *cell, "--against-precision", "fp32"]) == EXIT_BAD_INPUT
    assert "give --against DIR too" in capsys.readouterr().err
    with pytest.raises(AnalysisError, match="more than one precision"):
        compare_cell(load(tmp_path / "mixed").frame, width=64, epochs=10)
    assert compare_cell(load(tmp_path / "mixed").frame, width=64, epochs=10, precision="fp32").n == 3
