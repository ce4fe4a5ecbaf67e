"""analysis: run records → DataFrame → per-cell aggregates, scaling laws fitted by weighted least squares with
bootstrap intervals and identification flags, law choice by cross-validation, predictions with intervals,
held-out and out-of-sample checks, compute-optimal allocation, figures, a markdown report, and a comparison
with the seed's published numbers (Welch and TOST).

Reads only the run-record contract (results/README.md); never imports torch, speedrun or studies (only `common`,
the torch-free home of the facts the packages share: record fields, run states, Welch and TOST, the pooling rule).
Stages: records (load) → cells / aggregates → laws + fits → selection → predict / holdout / checks + joint /
allocation → study (all of it, once) → report/ (the renderers); CLI in cli.py. comparison.py decides a cell
against another sample (Welch, TOST); tost_power.py says how many runs would decide one left undecided. The
statistical core is the flat modules here; two subpackages hold the rest:
- report/: `report(study_dir)` (`from analysis.report import report`) writes report.md and the figures:
  build.py assembles them, summary.py writes the opening summary, sections.py the sections after it,
  markdown.py the tables and number formats, data_figures.py and fit_figures.py the figures;
- bench/: offline benchmarks of the statistics on synthetic data, one per CLI command: calibrate.py
  (`calibrate`: do the intervals cover?), calibrate_checks.py (`calibrate-checks`: the joint test's size and
  power on one study) and report_speed.py (`bench-report`: how long a report takes).
"""
from .aggregates import aggregate, cell_columns
from .allocation import Allocation, Envelope, allocation_exponent, efficient_envelope, pareto_frontier
from .cells import Cells, cell_table
from .checks import Check, CheckResult, read_checks, run_check
from .comparison import EQUIVALENCE_MARGIN, Comparison, compare, compare_cell
from .errors import AnalysisError, NoRecordsError, NotEnoughPointsError, RecordWarning
from .fits import NOT_IDENTIFIED, FitResult, FitSkipped, fit_cells, fit_law
from .holdout import HeldOut, corner_check, held_out, holdout_checks
from .laws import LAWS, Law, build_law, law_names
from .predict import Prediction, predict_acc, predict_cell
from .progress import GridStatus, grid_status
from .records import LoadResult, load
from .reference import Reference, load_reference
from .report.data_figures import (new_axes, plot_accuracy_heatmap, plot_accuracy_vs_epochs, plot_error_vs_flops,
                                  plot_time_frontier, save_figure)
from .report.fit_figures import plot_exponent_pairs, plot_parity, plot_residuals
from .selection import CVScore, LawChoice, choose_law, cross_validate
from .sizes import WidthSizes, width_sizes
from .study import StudyAnalysis, analyse

__all__ = [
    "load", "LoadResult", "aggregate", "cell_columns", "cell_table", "Cells",
    "LAWS", "Law", "build_law", "law_names", "fit_law", "fit_cells", "FitResult", "FitSkipped", "NOT_IDENTIFIED",
    "choose_law", "cross_validate", "LawChoice", "CVScore",
    "predict_cell", "predict_acc", "Prediction", "width_sizes", "WidthSizes",
    "held_out", "corner_check", "holdout_checks", "HeldOut", "read_checks", "run_check", "Check", "CheckResult",
    "grid_status", "GridStatus", "pareto_frontier", "efficient_envelope", "allocation_exponent", "Allocation", "Envelope",
    "new_axes", "save_figure", "plot_accuracy_vs_epochs", "plot_error_vs_flops", "plot_accuracy_heatmap",
    "plot_time_frontier", "plot_residuals", "plot_parity", "plot_exponent_pairs",
    "compare", "compare_cell", "Comparison", "EQUIVALENCE_MARGIN", "load_reference", "Reference",
    "analyse", "StudyAnalysis",
    "AnalysisError", "NoRecordsError", "NotEnoughPointsError", "RecordWarning",
]
