"""analysis.aggregate against a hand computation with numpy and scipy."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import AnalysisError, NoRecordsError, aggregate, cell_columns, load
from analysis.testing import make_record, write_records


@pytest.fixture
def study(tmp_path):
    rng = np.random.default_rng(7)
    cells = {(64, 10): 3, (64, 20): 5, (128, 10): 2, (128, 20): 1}
    records = [make_record(width=w, epochs=e, seed=s, ema_val_acc=float(0.9 + 0.01 * rng.random()),
                           config={"data_dir": f"/data/{s}"})  # execution-only: must not split cells
               for (w, e), n in cells.items() for s in range(n)]
    write_records(tmp_path, records)
    write_records(tmp_path, [make_record(width=64, epochs=10, seed=99, status="failed")])
    return load(tmp_path).frame, records


def test_matches_hand_computation(study):
    frame, records = study
    table = aggregate(frame)
    assert list(table.columns[:2]) == ["width", "epochs"]
    assert len(table) == 4
    for row in table.itertuples():
        values = np.array([r["ema_val_acc"] for r in records
                           if r["config"]["width"] == row.width and r["config"]["epochs"] == row.epochs])
        assert row.n == len(values)
        assert row.mean == pytest.approx(values.mean())
        assert row.min == pytest.approx(values.min()) and row.max == pytest.approx(values.max())
        times = [r["train_time_s"] for r in records if (r["config"]["width"], r["config"]["epochs"]) == (row.width, row.epochs)]
        assert row.train_time_s == pytest.approx(np.mean(times))
        if len(values) == 1:  # nothing invented for a single run
            assert np.isnan(row.std) and np.isnan(row.sem) and np.isnan(row.ci_low) and np.isnan(row.ci_high)
            continue
        assert row.std == pytest.approx(values.std(ddof=1))
        assert row.sem == pytest.approx(stats.sem(values))
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert (row.ci_low, row.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_train_flops_mean_and_metric_attr(study):
    frame, _ = study
    table = aggregate(frame)
    expected = frame.groupby(["width", "epochs"])["train_flops"].mean().to_numpy()
    np.testing.assert_allclose(table["train_flops"], expected)
    assert table.attrs["metric"] == "ema_val_acc"


def test_default_cells_add_varying_knobs_but_not_seed_or_execution_fields(study):
    frame, _ = study
    assert cell_columns(frame) == ["width", "epochs"]
    varied = frame.copy()
    varied["lr"] = np.where(varied["seed"] % 2 == 0, 0.1, 0.2)
    varied.attrs = dict(frame.attrs, config_columns=(*frame.attrs["config_columns"], "lr"))
    assert cell_columns(varied) == ["width", "epochs", "lr"]
    assert len(aggregate(varied)) > len(aggregate(frame))


def test_explicit_by_and_bad_input(study):
    frame, _ = study
    by_width = aggregate(frame, by=["width"])
    assert list(by_width["n"]) == [8, 3]
    with pytest.raises(AnalysisError, match="no such column"):
        aggregate(frame, by=["depth"])
    with pytest.raises(NoRecordsError):
        aggregate(frame[frame["width"] == 0])
    with pytest.raises(NoRecordsError):
        aggregate(pd.DataFrame({"x": [1]}))


def test_precision_counts_as_the_run_resolved_it(tmp_path):
    """A run that asked for "auto" and ran in fp32 shares its cell with one that asked for fp32; bf16 does not."""
    write_records(tmp_path, [
        make_record(width=64, epochs=10, seed=0, config={"precision": "fp32"}, precision="fp32", ema_val_acc=0.939),
        make_record(width=64, epochs=10, seed=1, config={"precision": "auto"}, precision="fp32", ema_val_acc=0.941)])
    frame = load(tmp_path).frame
    assert cell_columns(frame) == ["width", "epochs"] and list(aggregate(frame)["n"]) == [2]
    write_records(tmp_path, [make_record(width=64, epochs=10, seed=0, config={"precision": "bf16"}, precision="bf16")])
    table = aggregate(load(tmp_path).frame)
    assert cell_columns(load(tmp_path).frame) == ["width", "epochs", "precision"]
    assert dict(zip(table["precision"], table["n"])) == {"bf16": 1, "fp32": 2}
