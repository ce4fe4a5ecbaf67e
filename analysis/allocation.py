"""Compute-optimal allocation: for a training budget, which width (trained for budget / cost-per-epoch epochs)
gives the lowest error — in the data (the Pareto frontier of the cells) and under a fitted law (the efficient
envelope: the minimum over widths of the law's error at that budget).

- The envelope is searched over widths from half the smallest to twice the largest fitted width (the per-width
  law: its own widths only), for the point estimate and every bootstrap draw, so the best width per budget
  is a distribution, not a number. A budget beyond the data, or an optimum outside the fitted widths or epochs,
  is marked extrapolated.
- The allocation exponent: for the separable law, minimising A·N^(−alpha) + B·E^(−beta) at fixed N·E gives
  N_opt ∝ C^(beta/(alpha+beta)) — exact when training FLOPs ∝ N·E (here both FLOPs per epoch and num_params
  are quadratics in width, so their ratio drifts slightly; the report gives the drift). Other laws give no
  closed form; their envelope table still stands.
- A frontier in train_time_s: the same search over the observed widths, with each width's measured seconds
  per epoch (median of train_time_s / epochs over its runs) as the cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .aggregates import ok_runs
from .errors import AnalysisError
from .fits import FitResult
from .sizes import WidthSizes

__all__ = ["pareto_frontier", "Envelope", "Allocation", "efficient_envelope", "allocation_exponent",
           "time_per_epoch", "default_budgets"]

_GRID_POINTS = 121  # candidate widths per search (log-spaced): a step of ~1.2% in width


def pareto_frontier(table: pd.DataFrame, cost: str = "train_flops") -> pd.DataFrame:
    """The cells of an `aggregate` table that no cheaper cell beats: sorted by `cost`, each row's mean accuracy
    is higher than every row before it."""
    for column in (cost, "mean"):
        if column not in table:
            raise AnalysisError(f"pareto_frontier needs an aggregate() table with `{column}`")
    cells = table[np.isfinite(table[cost].astype(float))].sort_values([cost, "mean"], ascending=[True, False])
    best, keep = -np.inf, []
    for index, value in cells["mean"].items():
        if value > best:
            best = value
            keep.append(index)
    return cells.loc[keep].reset_index(drop=True)


@dataclass(frozen=True)
class Envelope:
    """The law's best width per budget: point estimate and its distribution over bootstrap draws."""

    cost: str  # "train_flops" or "train_time_s"
    table: pd.DataFrame  # budget, width, epochs, acc, width_low, width_median, width_high, extrapolated, note
    widths_searched: tuple  # (lowest, highest) candidate width
    law: str


def default_budgets(costs, n: int = 40, beyond: float = 10.0) -> np.ndarray:
    """Log-spaced budgets from the cheapest cell to `beyond` × the most expensive (the last part extrapolated)."""
    costs = np.asarray(costs, dtype=float)
    costs = costs[np.isfinite(costs) & (costs > 0)]
    if not len(costs):
        raise AnalysisError("no positive costs to build budgets from")
    return np.geomspace(costs.min(), costs.max() * beyond, n)


def efficient_envelope(fit: FitResult, sizes: WidthSizes, budgets, *, cost: str = "train_flops",
                       per_epoch: dict | None = None) -> Envelope:
    """Best width per budget under `fit`. cost="train_flops" uses sizes' FLOPs per epoch (any width);
    cost="train_time_s" needs `per_epoch` ({width: seconds per epoch}) and searches those widths only."""
    budgets = np.asarray(budgets, dtype=float)
    fitted = np.unique(fit.cells.width)
    if cost == "train_time_s" or not fit.law.uses_num_params:
        candidates = np.array(sorted(per_epoch) if cost == "train_time_s" else fit.law.widths, dtype=float)
        if not fit.law.uses_num_params:
            candidates = candidates[np.isin(candidates, np.array(fit.law.widths, dtype=float))]
    else:
        candidates = np.geomspace(fitted.min() / 2, fitted.max() * 2, _GRID_POINTS)
    if not len(candidates):
        raise AnalysisError(f"no widths to search for the {cost} envelope")
    if cost == "train_time_s":
        if not per_epoch:
            raise AnalysisError("a train_time_s frontier needs seconds per epoch per width")
        unit = np.array([per_epoch[w] for w in candidates])
    else:
        unit = sizes.values("flops_per_epoch", candidates)
    params = sizes.values("num_params", candidates) if fit.law.uses_num_params else np.full(len(candidates), np.nan)
    epochs = budgets[:, None] / unit[None, :]  # (budgets, widths)
    n_grid = np.broadcast_to(params[None, :], epochs.shape).ravel()
    w_grid = np.broadcast_to(candidates[None, :], epochs.shape).ravel()
    point, draws = fit.predict_error(n_grid, epochs.ravel(), w_grid)
    point = point.reshape(epochs.shape)
    best = np.nanargmin(point, axis=1)
    rows = np.arange(len(budgets))
    chosen_w, chosen_e = candidates[best], epochs[rows, best]
    if len(draws):
        draw_best = np.nanargmin(draws.reshape(len(draws), *epochs.shape), axis=2)  # (draws, budgets)
        widths = candidates[draw_best]
        low, median, high = np.percentile(widths, [2.5, 50, 97.5], axis=0)
    else:
        low = median = high = np.full(len(budgets), np.nan)
    fitted_epochs = fit.cells.epochs
    notes = []
    for b, w, e in zip(budgets, chosen_w, chosen_e):
        why = []
        if not fitted.min() * (1 - 1e-9) <= w <= fitted.max() * (1 + 1e-9):
            why.append(f"width {w:.3g} outside the fitted {fitted.min():g}–{fitted.max():g}")
        if w in (candidates[0], candidates[-1]) and len(candidates) > 1:
            why.append("optimum at the edge of the widths searched")
        if not fitted_epochs.min() * (1 - 1e-9) <= e <= fitted_epochs.max() * (1 + 1e-9):
            why.append(f"{e:.3g} epochs outside the fitted {fitted_epochs.min():g}–{fitted_epochs.max():g}")
        notes.append("; ".join(why))
    table = pd.DataFrame({"budget": budgets, "width": chosen_w, "epochs": chosen_e,
                          "acc": 1.0 - point[rows, best], "width_low": low, "width_median": median,
                          "width_high": high, "extrapolated": [bool(n) for n in notes], "note": notes})
    return Envelope(cost, table, (float(candidates[0]), float(candidates[-1])), fit.name)


@dataclass(frozen=True)
class Allocation:
    """N_opt ∝ C^value: the separable law's allocation exponent beta/(alpha+beta)."""

    value: float
    interval: tuple  # 95% bootstrap interval (NaN without draws)
    unidentified: bool  # rests on an exponent flagged "not identified"


def allocation_exponent(fit: FitResult) -> Allocation | None:
    """The separable law's allocation exponent with its bootstrap interval; None for laws without a closed
    form."""
    if not fit.law.closed_form_allocation:
        return None
    k_alpha, k_beta = fit.law.params.index("alpha"), fit.law.params.index("beta")

    def exponent(alpha, beta):
        total = alpha + beta
        return np.where(total > 0, beta / np.where(total > 0, total, 1.0), np.nan)

    value = float(exponent(fit.theta[k_alpha], fit.theta[k_beta]))
    if len(fit.draws):
        values = exponent(fit.draws[:, k_alpha], fit.draws[:, k_beta])
        interval = tuple(float(v) for v in np.nanpercentile(values, [2.5, 97.5]))
    else:
        interval = (float("nan"), float("nan"))
    return Allocation(value, interval, bool({"alpha", "beta"} & set(fit.not_identified)))


def time_per_epoch(frame: pd.DataFrame) -> dict:
    """{width: median train_time_s / epochs over its ok runs} (seconds per epoch, as measured)."""
    runs = ok_runs(frame)
    if "train_time_s" not in runs:
        raise AnalysisError("the records have no `train_time_s`; the time frontier needs it")
    seconds = pd.to_numeric(runs["train_time_s"], errors="coerce") / runs["epochs"].astype(float)
    out = seconds.groupby(runs["width"].astype(float)).median().dropna()
    return {float(w): float(v) for w, v in out.items() if v > 0}
