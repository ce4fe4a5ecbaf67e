"""Predict the mean accuracy of a cell (any width and epochs) from a fitted law, with the interval of the mean
and the interval for one new run.

- predicted_acc: 1 − the law's error at the cell (point estimate).
- se_pred: SD of the bootstrap draws' predictions (fits.py; widened there when χ²/dof shows lack of fit).
- ci95: the 2.5th and 97.5th percentiles of those draws — where the mean over many seeds should lie.
- pi95: predicted_acc ± 1.96·√(se_pred² + seed_sd²) — where ONE new run should land; seed_sd is one run's SD
  at the cell: the study's pooled SD relative to the error (cells.py), times the predicted error there (or,
  without replicates, the relative SD estimated from the fit's residuals).
- num_params at a width the study did not run comes from sizes.py (a quadratic in width, exact here).
The JSON form (`Prediction.to_json`) is a contract: studies' adaptive scheduler reads it through a subprocess.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import AnalysisError
from .fits import FitResult
from .sizes import WidthSizes

__all__ = ["Prediction", "predict_cell", "predict_acc", "JSON_KEYS"]

JSON_KEYS = ("study", "width", "epochs", "law", "predicted_acc", "se_pred", "ci95", "pi95", "seed_sd", "n_runs",
             "n_cells", "provisional", "not_identified", "extrapolated")
Z95 = 1.959963984540054  # the normal 97.5th percentile


@dataclass(frozen=True)
class Prediction:
    """A law's prediction at one cell; accuracies are fractions like ema_val_acc."""

    study: str
    width: int
    epochs: int
    law: str
    predicted_acc: float
    se_pred: float
    ci95: tuple
    pi95: tuple
    seed_sd: float
    n_runs: int
    n_cells: int
    provisional: bool
    not_identified: tuple
    extrapolated: bool
    num_params: float = float("nan")
    num_params_source: str = ""
    extrapolation: str = ""  # what lies outside the fitted range

    def to_json(self) -> dict:
        """The predict command's JSON object, with exactly JSON_KEYS (NaN becomes null: strict JSON)."""
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
        return {"study": self.study, "width": int(self.width), "epochs": int(self.epochs), "law": self.law,
                "predicted_acc": clean(self.predicted_acc), "se_pred": clean(self.se_pred),
                "ci95": [clean(v) for v in self.ci95], "pi95": [clean(v) for v in self.pi95],
                "seed_sd": clean(self.seed_sd), "n_runs": int(self.n_runs), "n_cells": int(self.n_cells),
                "provisional": bool(self.provisional), "not_identified": list(self.not_identified),
                "extrapolated": bool(self.extrapolated)}

    def text(self) -> str:
        p = lambda v: f"{100 * v:.2f}%" if math.isfinite(v) else "—"  # noqa: E731
        lines = [f"{self.study}: width {self.width:g} × {self.epochs:g} epochs, {self.law} law "
                 f"({self.n_runs} runs in {self.n_cells} cells{'; PROVISIONAL: the grid is incomplete' if self.provisional else ''})",
                 f"  predicted mean ema_val_acc {p(self.predicted_acc)} (se {100 * self.se_pred:.2f} points); "
                 f"95% interval of the mean [{p(self.ci95[0])}, {p(self.ci95[1])}]",
                 f"  one new run: 95% prediction interval [{p(self.pi95[0])}, {p(self.pi95[1])}] "
                 f"(one run's SD here {100 * self.seed_sd:.2f} points)"]
        if self.num_params_source and self.num_params_source != "records":
            lines.append(f"  num_params {self.num_params:,.0f} from a {self.num_params_source}")
        if self.extrapolated:
            lines.append(f"  extrapolated: {self.extrapolation}")
        if self.not_identified:
            lines.append(f"  not identified: {', '.join(self.not_identified)} — the interval rests on a law the "
                         "data do not pin down")
        return "\n".join(lines)


def predict_acc(fit: FitResult, num_params, epochs, width=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean accuracy predicted at the points: (point (k,), bootstrap draws (n_boot, k))."""
    point, draws = fit.predict_error(num_params, epochs, width)
    return 1.0 - point, 1.0 - draws


def predict_cell(fit: FitResult, sizes: WidthSizes | None, width: float, epochs: float, *, study: str = "",
                 provisional: bool = False) -> Prediction:
    """The prediction at (width, epochs); a width outside the per-width law's widths raises AnalysisError."""
    if not (np.isfinite(width) and width > 0 and np.isfinite(epochs) and epochs > 0):
        raise AnalysisError(f"width and epochs must be positive numbers, got width={width}, epochs={epochs}")
    widths = np.unique(fit.cells.width)
    if not fit.law.predicts_width(width):
        raise AnalysisError(f"the {fit.name} law has no curve for width {width:g} (its widths: "
                            f"{', '.join(f'{w:g}' for w in fit.law.widths)}): only a law in num_params can predict a width never run")
    num_params, source = (float("nan"), "")
    if fit.law.uses_num_params:
        if sizes is None:
            raise AnalysisError("a prediction in num_params needs the study's per-width sizes")
        num_params, source = sizes.value("num_params", width)
    point, draws = predict_acc(fit, num_params, epochs, width)
    acc = float(point[0])
    if len(draws):
        se = float(np.std(draws[:, 0], ddof=1))
        ci = tuple(float(v) for v in np.percentile(draws[:, 0], [2.5, 97.5]))
    else:
        se, ci = float("nan"), (float("nan"), float("nan"))
    seed_sd = float(fit.seed_sd_at(acc))
    half = Z95 * math.sqrt(se**2 + seed_sd**2) if math.isfinite(se) else float("nan")
    outside = []
    if not widths.min() <= width <= widths.max():
        outside.append(f"width {width:g} outside the fitted {widths.min():g}–{widths.max():g}")
    lo_e, hi_e = fit.cells.epochs.min(), fit.cells.epochs.max()
    if not lo_e <= epochs <= hi_e:
        outside.append(f"epochs {epochs:g} outside the fitted {lo_e:g}–{hi_e:g}")
    return Prediction(study=study, width=_number(width), epochs=_number(epochs), law=fit.name, predicted_acc=acc,
                      se_pred=se, ci95=ci, pi95=(acc - half, acc + half), seed_sd=seed_sd,
                      n_runs=fit.n_runs, n_cells=fit.n_cells, provisional=provisional,
                      not_identified=tuple(fit.not_identified), extrapolated=bool(outside), num_params=num_params,
                      num_params_source=source, extrapolation="; ".join(outside))


def _number(value):
    return int(value) if float(value).is_integer() else float(value)
