"""Held-out check: fit the joint law without the largest width (or epochs), predict those cells, compare."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .aggregates import aggregate, ok_runs
from .errors import AnalysisError
from .fits import FitResult, fit_joint_law
from .predict import predict

__all__ = ["HoldoutResult", "holdout_check"]


@dataclass(frozen=True)
class HoldoutResult:
    """Predicted vs observed `ema_val_acc` (fractions) at the held-out cells."""

    held_out: str  # "width" or "epochs"
    value: float  # the held-out (largest) value
    fit: FitResult  # the joint law fitted without it
    # width, epochs, n, observed (cell mean), predicted, predicted_low, predicted_high (95% interval),
    # inside (observed within the interval; None where there is no interval)
    table: pd.DataFrame

    @property
    def n_inside(self) -> int:
        return int((self.table["inside"] == True).sum())  # noqa: E712 - None means no interval

    def summary(self) -> str:
        return (f"held out {self.held_out}={self.value:g}: observed mean inside the 95% prediction interval at "
                f"{self.n_inside} of {len(self.table)} cells")


def holdout_check(frame: pd.DataFrame, hold_out: str = "width", *, size: str = "auto", n_boot: int = 200,
                  n_jobs: int = 1, seed: int = 0) -> HoldoutResult:
    """Fit the joint law to every cell but those at the largest `hold_out` ('width' or 'epochs') and predict
    those. Raises NotEnoughPointsError when the remaining cells cannot carry the fit."""
    if hold_out not in ("width", "epochs"):
        raise AnalysisError(f"hold_out={hold_out!r}: expected 'width' or 'epochs'")
    runs = ok_runs(frame)
    value = runs[hold_out].max()
    train, test = runs[runs[hold_out] != value], runs[runs[hold_out] == value]
    fit = fit_joint_law(train, size=size, n_boot=n_boot, n_jobs=n_jobs, seed=seed)
    cells = aggregate(test, by=["width", "epochs"])
    size_column = fit.variables[0]
    if size_column == "num_params":
        sizes = test.groupby(["width", "epochs"])["num_params"].mean().to_numpy()
    else:
        sizes = cells["width"].to_numpy()
    pred = predict(fit, **{size_column: sizes, "epochs": cells["epochs"].to_numpy()})
    table = pd.DataFrame({
        "width": cells["width"], "epochs": cells["epochs"], "n": cells["n"], "observed": cells["mean"],
        "predicted": pred.ema_val_acc, "predicted_low": pred.ema_val_acc_low, "predicted_high": pred.ema_val_acc_high,
    })
    inside = (table["observed"] >= table["predicted_low"]) & (table["observed"] <= table["predicted_high"])
    known = np.isfinite(table["predicted_low"]) & np.isfinite(table["predicted_high"])
    table["inside"] = [bool(i) if k else None for i, k in zip(inside, known)]  # None: no interval (no bootstrap)
    return HoldoutResult(hold_out, float(value), fit, table)
