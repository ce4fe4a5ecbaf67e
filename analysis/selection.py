"""Which law to believe: fit every law of the registry, score each by leave-one-cell-out cross-validation, and
take the best — or the simplest law within one standard error of the best (the one-SE rule of Hastie,
Tibshirani and Friedman), since with this few cells a more flexible law wins CV by chance as often as not.

CV error: refit the law without cell c (point estimate only), predict c's mean accuracy, and take the squared
difference in percentage points; the score is the mean over cells, its standard error the SD of the squared
differences / √cells. A law that cannot predict some left-out cell (too few cells left, or a width left with one
epochs value for the per-width law) has an incomplete CV and is not chosen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cells import Cells
from .errors import AnalysisError
from .fits import FitResult, FitSkipped, fit_cells
from .laws import LAWS, law_names

__all__ = ["CVScore", "LawChoice", "cross_validate", "choose_law", "fit_all"]


@dataclass(frozen=True)
class CVScore:
    """Leave-one-cell-out prediction of every cell (accuracy, fraction) and the score in points²."""

    law: str
    n_params: int
    predicted: np.ndarray = field(repr=False)  # per cell of the data; NaN where the law could not predict it
    observed: np.ndarray = field(repr=False)
    mse: float  # mean squared error, percentage points²
    mse_se: float
    complete: bool
    reason: str = ""  # why incomplete

    @property
    def rmse(self) -> float:
        return float(np.sqrt(self.mse))


@dataclass(frozen=True)
class LawChoice:
    fits: dict  # name → FitResult or FitSkipped, in registry order
    scores: dict  # name → CVScore (only laws fitted to the whole data)
    chosen: str | None  # None when no law could be fitted with a complete CV
    reason: str

    @property
    def fit(self) -> FitResult | None:
        return self.fits.get(self.chosen) if self.chosen else None

    def fitted(self) -> tuple:
        """Every law that was fitted (FitResult), in registry order."""
        return tuple(f for f in self.fits.values() if isinstance(f, FitResult))

    def for_width(self, width: float, widths_run) -> tuple:
        """(fit, why) for predicting a cell of `width`: the chosen law; where that law has a curve per fitted width
        only and `width` is not in `widths_run`, the same rule among the laws in N, and `why` says so (empty when
        the chosen law predicts it). The report's checks and `analysis predict` both choose this way."""
        fit = self.fit
        if fit is None or fit.law.uses_num_params or float(width) in {float(w) for w in widths_run}:
            return fit, ""
        other = self.among([f.name for f in self.fitted() if f.law.uses_num_params])
        if other.fit is None:
            return fit, ""  # nothing else can predict it: predict_cell says why
        return other.fit, (f"the chosen {self.chosen} law has a curve per fitted width only, so width {width:g} is "
                           f"predicted by the {other.chosen} law, chosen by the same rule among the laws in N: "
                           f"{other.reason}")

    def among(self, names) -> LawChoice:
        """The same rule applied to `names` only (e.g. the laws that can predict a width never run), reusing the
        fits and CV scores already made."""
        names = set(names)
        return _pick({n: f for n, f in self.fits.items() if n in names},
                     {n: s for n, s in self.scores.items() if n in names})


def cross_validate(cells: Cells, name: str, *, loss: str = "linear") -> CVScore:
    predicted = np.full(len(cells), np.nan)
    why = ""
    for c in range(len(cells)):
        keep = np.ones(len(cells), dtype=bool)
        keep[c] = False
        try:
            fit = fit_cells(cells.select(keep), name, n_boot=0, loss=loss)
            point, _ = fit.predict_error(cells.num_params[c], cells.epochs[c], cells.width[c])
            predicted[c] = 1.0 - float(point[0])
        except AnalysisError as exc:
            why = why or f"without {cells.labels()[c]}: {exc}"
    ok = np.isfinite(predicted)
    if not ok.any():
        return CVScore(name, 0, predicted, cells.acc, float("nan"), float("nan"), False, why)
    squared = (100.0 * (predicted[ok] - cells.acc[ok])) ** 2
    se = float(squared.std(ddof=1) / np.sqrt(ok.sum())) if ok.sum() > 1 else float("nan")
    complete = bool(ok.all())
    if not complete and not why:
        why = f"{int((~ok).sum())} cells could not be predicted"
    n_params = len(LAWS[name].build(tuple(np.unique(cells.width))).params)
    return CVScore(name, n_params, predicted, cells.acc, float(squared.mean()), se, complete, why)


def fit_all(cells: Cells, names=None, **options) -> dict:
    """{name: FitResult or FitSkipped} for every law in `names` (default: the whole registry)."""
    out = {}
    for name in names or law_names():
        try:
            out[name] = fit_cells(cells, name, **options)
        except AnalysisError as exc:
            out[name] = FitSkipped(name, str(exc))
    return out


def choose_law(cells: Cells, *, names=None, **options) -> LawChoice:
    """Fit every law (options as for fit_cells), cross-validate those that fitted, and choose one."""
    fits = fit_all(cells, names, **options)
    loss = options.get("loss", "linear")
    scores = {name: cross_validate(cells, name, loss=loss) for name, f in fits.items() if isinstance(f, FitResult)}
    return _pick(fits, scores)


def _pick(fits: dict, scores: dict) -> LawChoice:
    """The best CV law, or the simplest within one standard error of it, among laws with a complete CV."""
    eligible = {n: s for n, s in scores.items() if s.complete and np.isfinite(s.mse)}
    if not eligible:
        why = [f"{n}: {f.reason}" for n, f in fits.items() if isinstance(f, FitSkipped)]
        why += [f"{n}: {s.reason}" for n, s in scores.items() if s.reason]
        reason = "no law could be fitted and cross-validated on every cell (" + "; ".join(why) + ")"
        return LawChoice(fits, scores, None, reason)
    best = min(eligible.values(), key=lambda s: s.mse)
    threshold = best.mse + (best.mse_se if np.isfinite(best.mse_se) else 0.0)
    order = list(fits)
    close = [s for s in eligible.values() if s.mse <= threshold]
    simplest = min(close, key=lambda s: (s.n_params, order.index(s.law)))
    if simplest.law == best.law:
        reason = f"lowest leave-one-cell-out CV error (RMSE {best.rmse:.3g} points)"
    else:
        reason = (f"the simplest law ({simplest.n_params} parameters) within one standard error of the lowest CV "
                  f"error ({best.law}: RMSE {best.rmse:.3g} points; {simplest.law}: {simplest.rmse:.3g})")
    return LawChoice(fits, scores, simplest.law, reason)
