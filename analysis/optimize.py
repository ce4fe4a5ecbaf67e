"""Robust multi-start fitting of a law (Hoffmann et al. 2022; Besiroglu et al. 2024).

The loss is the Huber loss (δ = 1e-3) of log-error residuals, minimised with L-BFGS-B from every point of a
grid of starts; the best end point wins, because a single start often stops in a local optimum. Internally a
law is fitted in variables centred on the data, x / geomean(x), so that a coefficient is its term's value at
the centre of the data and barely correlates with the exponent, and with log coefficients (so they stay
positive); `to_raw` converts the result back to the law as written.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .blas import one_blas_thread
from .laws import Law

__all__ = ["Problem", "HUBER_DELTA", "MIN_ERROR", "make_problem", "cell_errors", "fit_problem", "to_raw"]

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, Besiroglu et al. 2024
MIN_ERROR = 1e-6  # cell-mean errors are floored here before taking logs (a perfect score on a tiny test subset)
# The start grid: the product of these, per parameter kind (6 starts for a one-term law, 18 for the joint law).
# Exponents are where distinct local optima live, so they get the most values; the constant and coefficients
# are multiples of the data's own error scale. Kept modest so a 200-draw bootstrap, which refits from the
# whole grid on every draw, takes seconds.
_CONSTANT_STARTS = (0.3, 0.9)  # × smallest observed error
_COEF_STARTS = (0.3,)  # × median observed error (a term's value at the centre of the data)
_EXPONENT_STARTS = (0.2, 0.7, 1.5)
# L-BFGS-B stopping rule: the Huber loss at δ = 1e-3 is nearly L1, so gradients never vanish; the relative
# loss change (ftol) ends the search. Tighter settings move the optimum by < 1e-6 of the loss, at 5× the time.
_OPTIONS = {"maxiter": 200, "ftol": 1e-10, "gtol": 1e-6}
_BOUNDS_LOG = (np.log(1e-9), np.log(1e3))  # log constant / log scaled coefficient
_BOUNDS_EXPONENT = (0.0, 10.0)


@dataclass(frozen=True)
class Problem:
    """Everything one fit needs, as arrays: built once, refitted on every bootstrap draw.

    The law is fitted to each grid cell's mean error over its runs (seeds): replicate seeds measure the same
    expected error, and a bootstrap draw resamples the runs within each cell and recomputes the means."""

    law: Law
    logx: np.ndarray  # (cells, terms) log(x / x_centre), one row per grid cell
    error: np.ndarray  # (runs,) observed error of each run
    cell: np.ndarray  # (runs,) the row of `logx` each run belongs to
    log_scale: np.ndarray  # (terms,) mean log x per term: the centre of the data
    starts: np.ndarray  # (n_starts, params) internal start points
    bounds: tuple  # L-BFGS-B bounds per internal parameter


def make_problem(law: Law, x: np.ndarray, error: np.ndarray, cell: np.ndarray | None = None) -> Problem:
    """`x` (runs, terms) and `error` (runs,) per run; `cell` numbers each run's grid cell 0..k-1 (default:
    every run its own cell)."""
    error = np.asarray(error, dtype=float)
    x = np.asarray(x, dtype=float).reshape(len(error), len(law.terms))
    cell = np.arange(len(error)) if cell is None else np.asarray(cell)
    counts = np.bincount(cell)
    cell_x = np.column_stack([np.bincount(cell, weights=column) / counts for column in x.T])
    log_scale = np.log(cell_x).mean(axis=0)
    means = np.bincount(cell, weights=error) / counts
    lo, mid = float(means.min()), float(np.median(means))
    grids = [np.log(lo * np.array(_CONSTANT_STARTS))]
    bounds = [_BOUNDS_LOG]
    for _ in law.terms:
        grids += [np.log(mid * np.array(_COEF_STARTS)), np.array(_EXPONENT_STARTS)]
        bounds += [_BOUNDS_LOG, _BOUNDS_EXPONENT]
    starts = np.array(list(itertools.product(*grids)))
    return Problem(law, np.log(cell_x) - log_scale, error, cell, log_scale, starts, tuple(bounds))


def cell_errors(problem: Problem, rows: np.ndarray | None = None) -> np.ndarray:
    """Mean error per cell over `rows` (a resample of run positions; default: every run once)."""
    rows = np.arange(len(problem.error)) if rows is None else rows
    cells = problem.cell[rows]
    return np.bincount(cells, weights=problem.error[rows], minlength=len(problem.logx)) / np.bincount(
        cells, minlength=len(problem.logx))


def fit_problem(problem: Problem, rows: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Best internal parameters over all starts and their loss; `rows` selects (resampled) runs."""
    logx = problem.logx
    logy = np.log(np.clip(cell_errors(problem, rows), MIN_ERROR, None))
    best_theta, best_loss = problem.starts[0], np.inf
    with one_blas_thread():
        for start in problem.starts:
            res = minimize(_objective, start, args=(logx, logy), jac=True, method="L-BFGS-B",
                           bounds=problem.bounds, options=_OPTIONS)
            if res.fun < best_loss:
                best_theta, best_loss = res.x, float(res.fun)
    return best_theta, best_loss


def to_raw(problem: Problem, theta: np.ndarray) -> np.ndarray:
    """Internal parameters → the law's own parameters: coef = exp(log coef' + exponent·log x_centre)."""
    theta = np.atleast_2d(theta)
    raw = theta.copy()
    raw[:, 0] = np.exp(theta[:, 0])
    for k in range(len(problem.law.terms)):
        raw[:, 1 + 2 * k] = np.exp(theta[:, 1 + 2 * k] + theta[:, 2 + 2 * k] * problem.log_scale[k])
    return raw


def _objective(theta: np.ndarray, logx: np.ndarray, logy: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean Huber loss of log residuals (divided by δ so gradients are O(1)) and its gradient."""
    n, n_terms = logx.shape
    z = np.empty((n, n_terms + 1))
    z[:, 0] = theta[0]
    z[:, 1:] = theta[1::2] - theta[2::2] * logx
    top = z.max(axis=1, keepdims=True)
    e = np.exp(z - top)
    total = e.sum(axis=1)
    weights = e / total[:, None]  # d log ŷ / d (log constant, log coef_k)
    r = top[:, 0] + np.log(total) - logy
    a = np.abs(r)
    loss = np.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))
    psi = np.clip(r, -HUBER_DELTA, HUBER_DELTA)
    # Element-wise products and sums, not `@`: a BLAS call on arrays this small can spin up OpenBLAS's
    # threads, which made fits 6× slower on a busy 2-core machine.
    weighted = psi[:, None] * weights
    grad = np.empty_like(theta)
    grad[0] = weighted[:, 0].sum()
    grad[1::2] = weighted[:, 1:].sum(axis=0)
    grad[2::2] = -(weighted[:, 1:] * logx).sum(axis=0)
    scale = 1.0 / (n * HUBER_DELTA)
    return float(loss.sum() * scale), grad * scale
