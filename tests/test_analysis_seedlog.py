"""Reading the seed's console output back: complete runs only, its own closing mean cross-checked."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from analysis.errors import AnalysisError
from analysis.reference import load_reference
from analysis.seedlog import parse_seed_log, seed_reference
from tests.conftest import ROOT

COLUMNS = ["epoch", "train_loss", "val_loss", "train_acc", "val_acc", "ema_val_acc", "total_time_seconds"]


def table_line(cells: list[str]) -> str:
    """One line as the v0.3.0 seed prints it: '|  ' + cell + '  ' per column, then '|'."""
    return "".join(f"|  {c}  " for c in cells) + "|"


def seed_output(runs: list[tuple[float, float]], epochs: int = 3, cut_last: bool = False, mean: bool = True) -> str:
    """Console output of the seed for runs given as (final ema_val_acc, total_time_seconds); the EMA column is
    blank before the last two epochs, as in the seed."""
    header = table_line(COLUMNS)
    lines = ["-" * len(header), header, "-" * len(header)]
    for i, (acc, seconds) in enumerate(runs):
        for epoch in range(epochs):
            ema = f"{acc:0.4f}" if epoch >= epochs - 2 else ""
            cells = [str(epoch), "1.2345", "1.1000", "0.8000", f"{acc - 0.005:0.4f}", ema,
                     f"{seconds * (epoch + 1) / epochs:0.4f}"]
            cells = [c.rjust(len(name)) for c, name in zip(cells, COLUMNS)]
            lines.append(table_line(cells))
            if epoch == epochs - 1 and not (cut_last and i == len(runs) - 1):
                lines.append("-" * len(header))
            if cut_last and i == len(runs) - 1 and epoch == 1:
                break
    if mean and not cut_last:
        values = [a for a, _ in runs]
        m = sum(values) / len(values)
        lines.append(f"Mean and variance: ({m}, {sum((v - m) ** 2 for v in values) / (len(values) - 1)})")
    return "\n".join(lines) + "\n"


RUNS = [(0.9401, 9.71), (0.9388, 9.69), (0.9412, 9.75)]


def test_reads_each_complete_run_final_row():
    log = parse_seed_log(seed_output(RUNS))
    assert [(r.ema_val_acc, r.train_time_s, r.epochs) for r in log.runs] == [(a, t, 3) for a, t in RUNS]
    assert log.incomplete == 0 and log.stated_mean == pytest.approx(sum(a for a, _ in RUNS) / 3)


def test_cut_off_run_is_left_out_and_counted():
    log = parse_seed_log(seed_output(RUNS, cut_last=True))
    assert len(log.runs) == 2 and log.incomplete == 1


def test_closing_mean_that_disagrees_is_an_error():
    text = seed_output(RUNS).replace("Mean and variance: (0.94", "Mean and variance: (0.95")
    with pytest.raises(AnalysisError, match="closing mean"):
        parse_seed_log(text)


def test_no_runs_or_foreign_table_is_an_error():
    with pytest.raises(AnalysisError, match="no complete run"):
        parse_seed_log("nothing here\n")
    with pytest.raises(AnalysisError, match="unexpected table columns"):
        parse_seed_log(table_line(["epoch", "loss"]) + "\n")


def test_reference_file_round_trips_through_load_reference(tmp_path):
    ref = seed_reference(parse_seed_log(seed_output(RUNS)), width=64, epochs=3, hardware="TestGPU",
                         command="python main.py", source="test")
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    loaded = load_reference(path)
    assert loaded.values == tuple(a for a, _ in RUNS) and (loaded.width, loaded.epochs) == (64, 3)
    assert loaded.provenance == "the seed's code, run by us"
    assert loaded.recipe == load_reference().recipe != {}  # the seed's main.py is the published recipe
    assert ref["train_time_s_mean"] == pytest.approx(sum(t for _, t in RUNS) / 3)
    with pytest.raises(AnalysisError, match="not --epochs 10"):
        seed_reference(parse_seed_log(seed_output(RUNS)), width=64, epochs=10, hardware="x", command="x", source="x")


def test_cli_writes_reference_and_refuses_to_overwrite(tmp_path):
    log = tmp_path / "seed.log"
    log.write_text(seed_output(RUNS))
    out = tmp_path / "ref.json"
    args = [sys.executable, "-m", "analysis", "seedlog", str(log), "--epochs", "3", "--hardware", "TestGPU",
            "--out", str(out)]
    first = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "3 complete runs" in first.stdout and "mean 94.00%" in first.stdout and "mean 9.72 s" in first.stdout
    before = out.read_text()
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--force" in again.stderr
    assert out.read_text() == before, "the existing file must be left as it was"


def test_compare_against_a_measured_reference_tests_accuracy_and_training_time(tmp_path):
    from analysis.testing import make_record, write_records

    ours = [(0.9390, 9.9), (0.9395, 10.1), (0.9380, 10.0)]
    write_records(tmp_path / "runs", [make_record(width=64, epochs=3, seed=i, ema_val_acc=a, train_time_s=t)
                                      for i, (a, t) in enumerate(ours)])
    log = tmp_path / "seed.log"
    log.write_text(seed_output(RUNS))
    ref = tmp_path / "ref.json"
    made = subprocess.run([sys.executable, "-m", "analysis", "seedlog", str(log), "--epochs", "3", "--hardware",
                           "TestGPU", "--out", str(ref)], cwd=ROOT, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    out = subprocess.run([sys.executable, "-m", "analysis", "compare", str(tmp_path), "--reference", str(ref)],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "the seed's code, run by us, TestGPU" in lines[0] and "width 64 × 3 epochs" in lines[0]
    assert lines[1].startswith("ours 93.883 ± 0.076 (n=3) vs reference 94.003 ± 0.120 (n=3)")
    # undecided, so the runs of ours that would decide it come next (against three runs as they are: over 200)
    assert lines[2].startswith("to decide it: runs of ours against the reference as it is to show equivalence")
    assert lines[3].startswith("training time (s): ours 10.000 ± 0.100 (n=3) vs reference 9.717 ± 0.031 (n=3)")
    assert lines[3].endswith("ours/reference = 1.029")
