"""The compute-optimal frontier: for each training-compute budget, the width that reaches the lowest error."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .aggregates import ok_runs
from .errors import AnalysisError
from .fits import FitResult
from .predict import predict

__all__ = ["pareto_frontier", "law_frontier", "flops_per_epoch"]


def pareto_frontier(table: pd.DataFrame) -> pd.DataFrame:
    """The cells of an `aggregate` table that no cheaper cell beats: sorted by `train_flops`, each row's mean
    accuracy is higher than every row before it. Columns: those of `table`."""
    for column in ("train_flops", "mean"):
        if column not in table:
            raise AnalysisError(f"pareto_frontier needs an aggregate() table with `{column}`")
    cells = table[np.isfinite(table["train_flops"])].sort_values(["train_flops", "mean"], ascending=[True, False])
    best, keep = -np.inf, []
    for index, value in cells["mean"].items():
        if value > best:
            best = value
            keep.append(index)
    return cells.loc[keep].reset_index(drop=True)


def flops_per_epoch(frame: pd.DataFrame) -> dict:
    """{width: training FLOPs per epoch}, the median of train_flops / epochs over the width's runs."""
    runs = ok_runs(frame)
    if "train_flops" not in runs:
        raise AnalysisError("the records have no `train_flops`; the compute frontier needs it")
    per_epoch = pd.to_numeric(runs["train_flops"], errors="coerce") / runs["epochs"]
    out = per_epoch.groupby(runs["width"]).median().dropna()
    return {w.item() if isinstance(w, np.generic) else w: float(v) for w, v in out.items()}


def law_frontier(joint: FitResult, frame: pd.DataFrame, budgets=None, n_budgets: int = 40) -> pd.DataFrame:
    """For each budget (train_flops), the observed width whose predicted error under the joint law is lowest
    when trained for budget / flops_per_epoch(width) epochs. Columns: train_flops, width, epochs,
    ema_val_acc (predicted), extrapolated (epochs outside the fitted range)."""
    if joint.law != "joint":
        raise AnalysisError(f"law_frontier needs the joint law's fit, got the {joint.law} law")
    per_epoch = flops_per_epoch(frame)
    runs = ok_runs(frame)
    lo_epochs, hi_epochs = runs["epochs"].min(), runs["epochs"].max()
    if budgets is None:
        flops = pd.to_numeric(runs["train_flops"], errors="coerce").dropna()
        budgets = np.geomspace(flops.min(), flops.max(), n_budgets)
    budgets = np.asarray(budgets, dtype=float)
    widths = np.array(sorted(per_epoch))
    epochs = budgets[:, None] / np.array([per_epoch[w] for w in widths])[None, :]  # (budgets, widths)
    size = np.broadcast_to(widths[None, :], epochs.shape)
    pred = predict(joint, width=size, epochs=epochs).error
    best = np.argmin(pred, axis=1)
    rows = np.arange(len(budgets))
    chosen = epochs[rows, best]
    return pd.DataFrame({"train_flops": budgets, "width": widths[best], "epochs": chosen,
                         "ema_val_acc": 1.0 - pred[rows, best],
                         "extrapolated": (chosen < lo_epochs) | (chosen > hi_epochs)})
