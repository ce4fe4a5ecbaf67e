"""analysis: run records → DataFrame → per-cell aggregates, scaling-law fits with bootstrap intervals,
figures, a markdown report, and a comparison with the seed's published numbers.

Reads only the run-record contract (results/README.md); never imports torch, speedrun or studies.
Stages: records (load) → aggregates → fits / predict / holdout / frontier → plots → reporting; CLI in cli.py.
"""
from .aggregates import aggregate, cell_columns
from .comparison import Comparison, compare, compare_cell
from .errors import AnalysisError, NoRecordsError, NotEnoughPointsError, RecordWarning
from .fits import FitResult, FitSkipped, fit, fit_compute_law, fit_epochs_law, fit_epochs_laws, fit_joint_law
from .frontier import flops_per_epoch, law_frontier, pareto_frontier
from .holdout import HoldoutResult, holdout_check
from .plots import (new_axes, plot_accuracy_heatmap, plot_accuracy_vs_epochs, plot_error_vs_flops, plot_frontier,
                    save_figure)
from .predict import Prediction, num_params_for_width, predict
from .records import LoadResult, load
from .reference import Reference, load_reference
from .reporting import report

__all__ = [
    "load", "LoadResult", "aggregate", "cell_columns",
    "fit", "fit_epochs_law", "fit_epochs_laws", "fit_joint_law", "fit_compute_law", "FitResult", "FitSkipped",
    "predict", "Prediction", "num_params_for_width", "holdout_check", "HoldoutResult",
    "pareto_frontier", "law_frontier", "flops_per_epoch",
    "new_axes", "save_figure", "plot_accuracy_vs_epochs", "plot_error_vs_flops", "plot_accuracy_heatmap",
    "plot_frontier",
    "compare", "compare_cell", "Comparison", "load_reference", "Reference",
    "report",
    "AnalysisError", "NoRecordsError", "NotEnoughPointsError", "RecordWarning",
]
