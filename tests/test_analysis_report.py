"""report(), the figures and the CLI, on small synthetic studies (including one too small to fit)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import (aggregate, load, new_axes, plot_accuracy_heatmap, plot_accuracy_vs_epochs,
                      plot_error_vs_flops, plot_frontier, report)
from analysis.cli import main
from analysis.testing import make_record, write_records

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = ("accuracy_vs_epochs", "error_vs_flops", "accuracy_heatmap", "compute_frontier")


def _study(directory, widths=(32, 64, 128), epochs=(10, 20, 40, 80), seeds=3, seed=0):
    rng = np.random.default_rng(seed)
    records = []
    for w in widths:
        for e in epochs:
            error = 0.03 + 40 * (6_570_488 / 64**2 * w**2) ** -0.5 + 0.3 * e ** -0.8
            records += [make_record(width=w, epochs=e, seed=s, study="grid", ema_val_acc=1 - error + rng.normal(0, 1e-3))
                        for s in range(seeds)]
    write_records(directory, records)
    return directory


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    directory = _study(tmp_path_factory.mktemp("study"))
    write_records(directory, [make_record(width=64, epochs=10, seed=7, status="failed")])
    (directory / "runs" / "torn.json").write_text('{"schema_version": 1,')
    return directory


@pytest.fixture(scope="module")
def written(study):
    return report(study, n_boot=8)


def test_report_has_every_section(written, study):
    assert written == study / "report.md"
    text = written.read_text()
    for needle in ("## Where the runs came from", "synthetic (analysis.testing)", "fp16", "2.4.0",
                   "- ok: 36", "- failed: 1", "- corrupt files (skipped): 1", "torn.json",
                   "## Results per grid cell", "ema_val_acc (%) mean ± std", "95% CI (%)", "train_flops",
                   "## Scaling laws", "epochs (width=32)", "joint (all runs)", "compute (all runs)", "e_inf = ",
                   "## Held-out check", "held out epochs=80", "## Compute-optimal frontier",
                   "## Comparison with the published reference", "Welch", "## Figures"):
        assert needle in text, needle
    # three widths leave two after holding one out: not enough for the joint law, and the report says so
    assert "without the largest width: not computed: not enough points" in text


def test_report_writes_non_empty_pngs_and_links_them(written, study):
    text = written.read_text()
    for stem in FIGURES:
        path = study / "figures" / f"{stem}.png"
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5_000, stem
        assert f"(figures/{stem}.png)" in text


def test_tiny_study_report_explains_what_it_cannot_compute(tmp_path):
    _study(tmp_path, widths=(64, 128), epochs=(10, 20), seeds=1)
    text = report(tmp_path, n_boot=4).read_text()
    assert text.count("not enough points") >= 4  # per-width, joint, compute, held-out
    assert "Not applicable: the study has no width 128 × 80 epochs cell" in text
    assert "| 64 | 10 | 1 |" in text  # n = 1: mean shown, no invented spread
    assert (tmp_path / "figures" / "accuracy_heatmap.png").read_bytes().startswith(PNG)


def test_report_with_reference_cell_but_one_seed(tmp_path):
    _study(tmp_path, widths=(128,), epochs=(80,), seeds=1)
    text = report(tmp_path, n_boot=4).read_text()
    assert "Not computed: not enough points for a comparison with the reference: need ≥2 runs" in text


@pytest.mark.filterwarnings("ignore::analysis.RecordWarning")
def test_plot_functions_draw_on_the_given_axes(study):
    table = aggregate(load(study).frame)
    for plot in (plot_accuracy_vs_epochs, plot_error_vs_flops, plot_accuracy_heatmap, plot_frontier):
        figure, ax = new_axes()
        assert plot(ax, table) is ax
        assert ax.get_xlabel() and ax.get_ylabel()
    assert plot_error_vs_flops(new_axes()[1], table).get_xlabel() == "train_flops (FLOPs)"
    assert plot_accuracy_vs_epochs(new_axes()[1], table).get_ylabel() == "ema_val_acc (%)"


def test_figures_never_touch_pyplot(tmp_path):
    code = ("import sys, analysis; "
            "f, ax = analysis.new_axes(); analysis.save_figure(f, sys.argv[1]); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.png")], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "x.png").read_bytes().startswith(PNG)


def test_cli_summary_markdown_and_csv(study, capsys):
    assert main(["summary", str(study)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("| width | epochs | n | ema_val_acc (%) mean ± std")
    assert "torn.json" in err  # the skipped file is named on stderr
    assert main(["summary", str(study), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("width,epochs,n,mean,std,sem,ci_low,ci_high,min,max,train_time_s,train_flops")
    assert len(out.splitlines()) == 1 + 12


def test_cli_compare_and_fit(study, capsys):
    assert main(["compare", str(study)]) == 0
    assert "difference" in capsys.readouterr().out
    assert main(["fit", str(study), "--n-boot", "4", "--law", "epochs"]) == 0
    out = capsys.readouterr().out
    assert out.count("epochs law at width=") == 3 and "95% interval" in out


@pytest.mark.parametrize("argv, message", [
    (["summary", "{tmp}/missing"], "does not exist"),
    (["summary", "{tmp}"], "no run records"),
    (["compare", "{study}", "--width", "96"], "no ok runs at width=96"),
    (["fit", "{tiny}", "--law", "joint", "--n-boot", "2"], "not enough points"),
    (["summary", "{study}", "--format", "xml"], "invalid choice"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, study, capsys):
    tiny = _study(tmp_path / "tiny", widths=(64,), epochs=(10, 20), seeds=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.format(tmp=empty, study=study, tiny=tiny) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning" not in line]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_python_m_analysis_bad_dir(tmp_path):
    run = subprocess.run([sys.executable, "-m", "analysis", "report", str(tmp_path / "nope")], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "does not exist" in run.stderr and "Traceback" not in run.stderr

