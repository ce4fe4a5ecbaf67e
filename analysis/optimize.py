"""Weighted least squares of log error, from a small grid of starts, inside bounds that keep each law honest.

Residual of cell c: (log ē_c − log f(x_c; θ)) / se_c, where se_c is the standard error of the cell's log mean
error (cells.py). A bounded Levenberg-Marquardt loop with the law's analytic Jacobian solves it in about a
millisecond (scipy's least_squares, the reference the tests compare it with, takes ten times longer; it
still does the optional Huber loss). A start grid is used because the floor and an exponent trade off along a
curved valley with more than one local minimum; the bootstrap refits start from the point estimate (a draw is a
small perturbation of the data, so the nearest minimum is the right one; the calibration benchmark checks it).

Bounds: a floor lies in [0, smallest observed error] (an irreducible error above an observed one is impossible);
a coefficient (its term's value at the centre of the data) in [1e-6, 2] error units; an exponent in [0, 5]
(the interaction law: [0.05, 5]); the saturating law's R in [0.1, 100 × the largest epochs]. A parameter that
ends on one of these bounds is not identified by the data (fits.py flags it).
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from .laws import COEF, EXPONENT, FLOOR, SCALE, Law, Points

__all__ = ["Problem", "make_problem", "solve", "levenberg_marquardt", "HUBER_DELTA", "EXPONENT_MAX", "COEF_BOUNDS"]

# Huber's δ in units of each cell's standard error (residuals are standardised): 1.345 keeps 95% of least
# squares' efficiency under Gaussian noise (Huber 1964; Holland & Welsch 1977) while down-weighting cells
# beyond 1.35 SE. The δ = 1e-3 of Hoffmann et al. is in raw log units, for residuals 100× smaller than ours.
HUBER_DELTA = 1.345
EXPONENT_MAX = 5.0
COEF_BOUNDS = (1e-6, 2.0)
_FLOOR_STARTS = (0.2, 0.8)  # × the floor's upper bound
_EXPONENT_STARTS = (0.3, 1.0)
_PER_WIDTH_EXPONENT_STARTS = (0.3, 1.0, 2.0)  # one shared exponent: three starts cost what two did elsewhere
_SCALE_STARTS = (1.0, 10.0)  # × the largest epochs
_R_BOUNDS = (0.1, 100.0)  # R: lower in epochs, upper × the largest epochs


@dataclass(frozen=True)
class Problem:
    """Everything one fit needs: the law, where its cells are, their log errors and standard errors."""

    law: Law
    points: Points
    y: np.ndarray  # log mean error per cell
    se: np.ndarray  # standard error of y per cell (relative in residual mode)
    lower: np.ndarray
    upper: np.ndarray
    starts: np.ndarray  # (n_starts, params)
    loss: str  # "linear" (least squares) or "huber"


def make_problem(law: Law, points: Points, y: np.ndarray, se: np.ndarray, epochs_max: float,
                 floor_max: np.ndarray, loss: str = "linear") -> Problem:
    """`floor_max` holds each FLOOR parameter's upper bound (the smallest observed error it sits under)."""
    lower, upper, grids = [], [], []
    floors = iter(np.atleast_1d(floor_max))
    median_error = float(np.exp(np.median(y)))
    for kind in law.kinds:
        if kind == FLOOR:
            top = max(float(next(floors)), 2e-12)
            lower.append(0.0), upper.append(top)
            grids.append(("floor", top))
        elif kind == COEF:
            lower.append(np.log(COEF_BOUNDS[0])), upper.append(np.log(COEF_BOUNDS[1]))
            grids.append(("coef", np.log(0.5 * median_error)))
        elif kind == EXPONENT:
            lower.append(law.min_exponent), upper.append(EXPONENT_MAX)
            grids.append(("exponent", None))
        elif kind == SCALE:
            lower.append(np.log(_R_BOUNDS[0])), upper.append(np.log(_R_BOUNDS[1] * epochs_max))
            grids.append(("scale", epochs_max))
    lower, upper = np.array(lower), np.array(upper)
    starts = _starts(law, grids)
    span = upper - lower
    starts = np.clip(starts, lower + 1e-6 * span, upper - 1e-6 * span)  # the solver needs interior starts
    return Problem(law, points, np.asarray(y, float), np.asarray(se, float), lower, upper, starts, loss)


def _starts(law: Law, grids: list) -> np.ndarray:
    """Floors move together (one factor), coefficients share one value, each exponent and scale has its own
    values: 8 starts for the separable and interaction laws, 6 for per-width, 16 for saturating."""
    exponent_values = _EXPONENT_STARTS if law.uses_num_params else _PER_WIDTH_EXPONENT_STARTS
    axes = [_FLOOR_STARTS]
    exponent_slots = [k for k, (kind, _) in enumerate(grids) if kind in ("exponent", "scale")]
    for k in exponent_slots:
        axes.append(exponent_values if grids[k][0] == "exponent" else _SCALE_STARTS)
    rows = []
    for combo in itertools.product(*axes):
        floor_factor, rest = combo[0], iter(combo[1:])
        row = []
        for kind, info in grids:
            if kind == "floor":
                row.append(floor_factor * info)
            elif kind == "coef":
                row.append(info)
            elif kind == "exponent":
                row.append(next(rest))
            else:
                row.append(np.log(next(rest) * info))
        rows.append(row)
    return np.array(rows, dtype=float)


def _residuals(theta, problem: Problem):
    pred, _ = problem.law.model(theta, problem.points)
    return (problem.y - np.log(np.maximum(pred, 1e-300))) / problem.se


def _jacobian(theta, problem: Problem):
    pred, jac = problem.law.model(theta, problem.points)
    return -jac / (np.maximum(pred, 1e-300) * problem.se)[:, None]


def _residuals_and_jacobian(theta, problem: Problem):
    pred, jac = problem.law.model(theta, problem.points)
    pred = np.maximum(pred, 1e-300)
    scale = pred * problem.se
    return (problem.y - np.log(pred)) / problem.se, -jac / scale[:, None]


def solve(problem: Problem, y: np.ndarray | None = None, starts: np.ndarray | None = None,
          se: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The best parameters over `starts` (default: the problem's grid) for data `y` and standard errors `se`
    (default: the problem's), and the weighted sum of squares there (χ², or the Huber objective with
    loss="huber"). Callers hold blas.one_blas_thread() around many solves (entering it costs about as much
    as one solve)."""
    if y is not None or se is not None:
        problem = replace(problem, y=problem.y if y is None else y, se=problem.se if se is None else se)
    best, best_cost = None, np.inf
    span = problem.upper - problem.lower
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for start in problem.starts if starts is None else np.atleast_2d(starts):
            start = np.clip(start, problem.lower + 1e-9 * span, problem.upper - 1e-9 * span)
            if problem.loss == "linear":
                x, cost = levenberg_marquardt(problem, start)
            else:
                res = least_squares(_residuals, start, jac=_jacobian, bounds=(problem.lower, problem.upper),
                                    method="trf", loss=problem.loss, f_scale=HUBER_DELTA, args=(problem,),
                                    x_scale="jac", max_nfev=200)
                x, cost = res.x, 2.0 * float(res.cost)  # scipy's cost is half the sum of robustified squares
            if np.isfinite(cost) and cost < best_cost:
                best, best_cost = x, cost
    if best is None:
        raise FloatingPointError(f"the {problem.law.name} law could not be evaluated at any start")
    return best, best_cost


def levenberg_marquardt(problem: Problem, x: np.ndarray, max_iter: int = 200) -> tuple[np.ndarray, float]:
    """Bounded Levenberg-Marquardt for the sum of squared residuals: (x, cost).

    scipy's trust-region reflective solver reaches the same minima (the tests compare them) but spends ~10 ms a
    fit in Python overhead; a bootstrap and cross-validation make thousands of fits, so this small loop (~1 ms)
    is what keeps a report within seconds. Bounds: a step is clipped into the box, and a parameter on a bound
    whose gradient points outwards is held there for that step (a projected Gauss-Newton step on the rest).
    """
    lower, upper = problem.lower, problem.upper
    r, jac = _residuals_and_jacobian(x, problem)
    cost = float(r @ r)
    lam = 1e-3
    eps = 1e-12 * (upper - lower)
    for _ in range(max_iter):
        grad = jac.T @ r
        held = ((x <= lower + eps) & (grad > 0)) | ((x >= upper - eps) & (grad < 0))
        free = ~held
        if not free.any() or np.max(np.abs(grad[free])) < 1e-12:
            break
        a = jac[:, free]
        hess = a.T @ a
        damping = lam * (np.diag(hess) + 1e-12)
        try:
            step = np.linalg.solve(hess + np.diag(damping), -grad[free])
        except np.linalg.LinAlgError:
            lam *= 10.0
            continue
        trial = x.copy()
        trial[free] += step
        trial = np.clip(trial, lower, upper)
        r_new, jac_new = _residuals_and_jacobian(trial, problem)
        cost_new = float(r_new @ r_new)
        if np.isfinite(cost_new) and cost_new < cost:
            converged = cost - cost_new <= 1e-12 * (1.0 + cost)
            x, r, jac, cost = trial, r_new, jac_new, cost_new
            lam = max(lam / 3.0, 1e-9)
            if converged:
                break
        else:
            lam *= 4.0
            if lam > 1e12:
                break
    return x, cost
