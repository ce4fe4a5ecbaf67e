"""Fit a law of `laws.LAWS` to a study's cells: weighted least squares of log mean error, lack of fit, a
parametric bootstrap for intervals, and the identification flags that decide what may be concluded.

- Point estimate: optimize.solve from the start grid; weights from each cell's standard error (cells.py).
- Lack of fit: χ² = Σ standardised residual², dof = cells − parameters. Because cell variances are
  estimated (moderated, finite degrees of freedom d), a correct law gives χ²/dof ≈ mean d/(d − 2), not 1: the
  report shows both. When χ²/dof exceeds that expectation, the scale factor φ = ratio (as the Particle Data
  Group does) widens every interval: the bootstrap noise is multiplied by √φ.
- Intervals: `n_boot` parametric bootstrap draws, refitted from the point estimate; 95% percentile intervals.
  A draw redraws each cell's log mean error around the fitted curve with its standard error × √φ, AND its
  standard error from the χ² distribution of its estimate (d degrees of freedom), because the real fit weights
  cells by estimated, not true, variances: that noise widens the real estimator's spread, and a bootstrap with
  fixed weights missed it (coverage 92% instead of 95% in the calibration benchmark).
- "not identified": a parameter at a bound, whose interval touches a bound, or whose interval spans more than
  two orders of magnitude; an exponent whose term can vanish is flagged with it. Nothing downstream states a
  conclusion resting on a flagged parameter without saying so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats

from .blas import one_blas_thread
from .cells import Cells, cell_table
from .errors import AnalysisError, NotEnoughPointsError
from .laws import COEF, EXPONENT, FLOOR, Law, Points, build_law, law_names
from .optimize import HUBER_DELTA, Problem, make_problem, solve

__all__ = ["FitResult", "FitSkipped", "Flag", "fit_law", "fit_cells", "NOT_IDENTIFIED", "SPAN_ORDERS"]

NOT_IDENTIFIED = "not identified"  # the exact phrase every output uses
LACK_OF_FIT_ALPHA = 0.05  # a χ² test below this says the law misses the cells by more than seed noise
SPAN_ORDERS = 2.0  # an interval wider than this many decades does not pin its parameter down
_MIN_DISTINCT = 3  # two values of a variable cannot separate its coefficient, exponent and the floor


@dataclass(frozen=True)
class FitResult:
    """A fitted law: estimates in display units (coefficients at the centre of the data), 95% intervals, lack of
    fit, and which parameters the data cannot pin down."""

    law: Law
    params: dict  # name → point estimate
    intervals: dict  # name → (low, high), 95% percentile bootstrap; NaN without draws
    not_identified: tuple  # parameter names flagged NOT_IDENTIFIED
    flag_reasons: dict  # name → Flag: why it is flagged (str(flag) reads it out)
    centre: dict  # {"num_params": N0, "epochs": E0}: the geometric centre where A0, B0 are the terms' values
    cells: Cells = field(repr=False)  # the cells fitted
    excluded: tuple = ()  # "width×epochs: why" for cells of the data the law could not use
    chi2: float = float("nan")
    dof: int = 0
    chi2_expected: float = 1.0  # expected χ²/dof for a correct law, given estimated cell variances
    inflation: float = 1.0  # φ: bootstrap noise scaled by √φ
    std_residuals: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    fitted_acc: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    seed_rel_sd: float = float("nan")  # SD of one run as a fraction of the error (pooled, or from the residuals)
    n_boot: int = 0
    n_starts: int = 0
    loss: str = "linear"
    theta: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    draws: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)  # internal, per draw
    notes: tuple = ()

    @property
    def name(self) -> str:
        return self.law.name

    @property
    def n_runs(self) -> int:
        return self.cells.n_runs

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def chi2_per_dof(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else float("nan")

    def seed_sd_at(self, acc):
        """One run's SD (accuracy units) at a cell of mean accuracy `acc`: seed_rel_sd × the error there."""
        return self.cells.sd_at(acc, self.seed_rel_sd)

    @property
    def lack_of_fit_p(self) -> float:
        """P(χ² this large | the law is right and only seed noise remains); NaN where it cannot be tested."""
        if not (self.dof > 0 and math.isfinite(self.chi2)):
            return float("nan")
        return float(stats.chi2.sf(self.chi2 / self.chi2_expected, self.dof))

    @property
    def misses_cells(self) -> bool:
        """True when the χ² test says the law misses the cells by more than seed noise."""
        return self.lack_of_fit_p < LACK_OF_FIT_ALPHA  # False for NaN

    def lack_of_fit(self) -> str:
        """One clause on χ²/dof against seed noise and what was done about it (after 'χ²/dof = … expected …')."""
        p = self.lack_of_fit_p
        if not math.isfinite(p):
            return "residuals set the seed noise (no replicates), so lack of fit cannot be tested"
        if math.sqrt(self.inflation) < 1.005:  # widened by less than the ×1.00 shown: nothing to say
            return f"consistent with seed noise (p = {p:.2g})"
        widen = f"widened ×{math.sqrt(self.inflation):.2f}"
        if self.misses_cells:
            return f"the law misses the cells by more than seed noise (p = {p:.2g}), so every interval is {widen}"
        return (f"above that, though not significantly (p = {p:.2g}); the misfit may be noise, but every interval is "
                f"still {widen} to cover it")

    def points(self, num_params, epochs, width=None) -> Points:
        epochs = np.atleast_1d(np.asarray(epochs, dtype=float))
        num_params = np.broadcast_to(np.asarray(num_params, dtype=float), epochs.shape)
        group = self.law.groups(np.broadcast_to(np.asarray(width, dtype=float), epochs.shape))
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.log(num_params / self.centre["num_params"])
        return Points(u=u, v=np.log(epochs / self.centre["epochs"]), epochs=epochs,
                      log_e0=float(np.log(self.centre["epochs"])), group=group)

    def predict_error(self, num_params, epochs, width=None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean error at the points: (point (k,), draws (n_boot, k))."""
        points = self.points(num_params, epochs, width)
        point = self.law.model(self.theta, points)[0]
        draws = np.empty((len(self.draws), len(point)))
        for k, t in enumerate(self.draws):
            draws[k] = self.law.model(t, points)[0]
        return point, draws

    def summary(self) -> str:
        lines = [f"{self.name} law: {self.law.formula}   (error = 1 − ema_val_acc; N = num_params, E = epochs)",
                 f"  {self.n_runs} runs in {self.n_cells} cells; χ²/dof = {self.chi2_per_dof:.3g} on {self.dof} dof "
                 f"(≈{self.chi2_expected:.2f} expected from seed noise): {self.lack_of_fit()}; "
                 f"{self.n_boot} bootstrap draws"]
        for name, value in self.params.items():
            low, high = self.intervals[name]
            flag = f"   {NOT_IDENTIFIED} ({self.flag_reasons[name]})" if name in self.not_identified else ""
            lines.append(f"  {name:>10} = {value:.4g}   95% interval [{low:.4g}, {high:.4g}]{flag}")
        lines.append(f"  A0, B0 (and a0) are the terms' values at the data's centre: N0 = {self.centre['num_params']:.4g}, "
                     f"E0 = {self.centre['epochs']:.4g}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


# Why a parameter is flagged NOT_IDENTIFIED (Flag.cause). Decisions read these fields; the text is for reading.
AT_BOUND = "at_bound"  # the estimate sits on a bound of the search
INTERVAL_AT_BOUND = "interval_at_bound"  # the estimate is inside, but its bootstrap interval reaches a bound
WIDE_INTERVAL = "wide_interval"  # the interval spans more than SPAN_ORDERS decades
TERM_VANISHES = "term_vanishes"  # an exponent whose coefficient may be 0 (its term can vanish)
LOWER, UPPER = "lower", "upper"


@dataclass(frozen=True)
class Flag:
    """One parameter's identification flag: its cause, the bound involved and the numbers, as data."""

    cause: str  # AT_BOUND, INTERVAL_AT_BOUND, WIDE_INTERVAL or TERM_VANISHES
    bound: str | None = None  # LOWER or UPPER, for the two bound causes
    value: float | None = None  # the bound's value, or the decades the interval spans
    term: str | None = None  # TERM_VANISHES: the coefficient of the term (None: every width's epochs term)

    @property
    def reaches_lower(self) -> bool:
        """At its lower bound, or its interval reaches it: for a coefficient, its term may be 0."""
        return self.cause in (AT_BOUND, INTERVAL_AT_BOUND) and self.bound == LOWER

    def __str__(self) -> str:
        if self.cause == AT_BOUND:
            return f"at its {self.bound} bound {self.value:.3g}"
        if self.cause == INTERVAL_AT_BOUND:
            return f"its interval reaches the {self.bound} bound {self.value:.3g}"
        if self.cause == WIDE_INTERVAL:
            return f"its interval spans {self.value:.1f} orders of magnitude"
        return f"its term ({self.term}) can vanish" if self.term else "every width's epochs term can vanish"


@dataclass(frozen=True)
class FitSkipped:
    """A law that could not be fitted to these data, and why."""

    law: str
    reason: str
    subset: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.law


def fit_law(frame: pd.DataFrame, name: str = "separable", **options) -> FitResult:
    """Fit the law `name` (see laws.LAWS) to the ok runs of `frame`; options as for `fit_cells`."""
    return fit_cells(cell_table(frame), name, **options)


def fit_cells(cells: Cells, name: str = "separable", *, n_boot: int = 200, seed: int = 0, loss: str = "linear",
              n_jobs: int = 1, boot_from: str = "point") -> FitResult:
    """Fit law `name` to `cells`. `boot_from` = "point" (refit each draw from the estimate) or "grid" (from
    the whole start grid: slower; the calibration benchmark compares them)."""
    with one_blas_thread():
        return _fit_cells(cells, name, n_boot, seed, loss, n_jobs, boot_from)


def _fit_cells(cells: Cells, name: str, n_boot: int, seed: int, loss: str, n_jobs: int, boot_from: str) -> FitResult:
    if name not in law_names():
        raise AnalysisError(f"unknown law {name!r}; valid laws: {', '.join(law_names())}")
    if loss not in ("linear", "huber"):
        raise AnalysisError(f"loss={loss!r}: expected 'linear' (weighted least squares) or 'huber'")
    if n_boot < 0:
        raise AnalysisError(f"n_boot={n_boot}: expected 0 (no intervals) or more bootstrap draws")
    cells, excluded = _usable(cells, build_law(name, np.unique(cells.width)))
    law = build_law(name, np.unique(cells.width))  # again, for the usable cells' widths (a per-width law's own)
    _check_enough(law, cells)
    centre = {"num_params": 1.0 if not law.uses_num_params else float(np.exp(np.mean(np.log(cells.num_params)))),  # 1.0: unused
              "epochs": float(np.exp(np.mean(np.log(cells.epochs))))}
    points = _points(cells, law, centre)
    residual_mode = cells.mode == "residual"
    se = 1.0 / np.sqrt(cells.n) if residual_mode else cells.se_log  # residual mode: in units of the relative SD
    floor_max = ([cells.error.min()] if law.uses_num_params else [cells.error[cells.width == w].min() for w in law.widths])
    problem = make_problem(law, points, cells.log_error, se, float(cells.epochs.max()), np.array(floor_max), loss)
    theta, _ = solve(problem)
    pred = law.model(theta, points)[0]
    resid = (cells.log_error - np.log(pred)) / se
    dof = len(cells) - law.n_params
    notes = list(excluded and [f"cells left out: {'; '.join(excluded)}"])
    chi2 = float(resid @ resid)
    if residual_mode:
        sigma = np.sqrt(chi2 / dof) if dof > 0 else float("nan")
        se, resid, seed_rel_sd = se * sigma, resid / sigma, sigma
        chi2, expected, inflation = float("nan"), 1.0, 1.0
        notes.append("no cell has two differing runs, so seed noise is unmeasured: one relative SD for every cell is "
                     f"estimated from the fit's residuals ({100 * sigma:.3g}% of the error); χ²/dof cannot test the law")
    else:
        seed_rel_sd = cells.seed_rel_sd
        d = cells.stat_dof
        expected = float(np.mean(np.where(d > 2, d / np.maximum(d - 2, 1e-9), 3.0)))
        inflation = max(1.0, (chi2 / dof) / expected) if dof > 0 else 1.0
    if loss == "huber":
        notes.append(f"Huber loss, δ = {HUBER_DELTA} standard errors: cells beyond it count linearly, not quadratically")
    n_boot = n_boot if dof > 0 and np.isfinite(se).all() and (se > 0).all() else 0
    if dof <= 0:
        notes.append("as many parameters as cells: no degrees of freedom left, so no intervals")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_boot, len(cells))) * (np.sqrt(inflation) * se)
    dof_cells = np.where(np.isfinite(cells.stat_dof), cells.stat_dof, 1e6)  # residual mode: all inf, so 1e6
    se_draws = se * np.sqrt(rng.chisquare(dof_cells, size=(n_boot, len(cells))) / dof_cells)
    draws = _bootstrap(replace(problem, se=se), np.log(pred) + noise, se_draws, theta, boot_from, n_jobs)
    shown = law.display(theta)
    shown_draws = law.display(draws)
    if len(draws):
        low, high = np.percentile(shown_draws, [2.5, 97.5], axis=0)
    else:
        low = high = np.full(law.n_params, np.nan)
    reasons = _flags(law, theta, draws, problem)
    return FitResult(
        law=law, params=dict(zip(law.params, map(float, shown))),
        intervals={p: (float(lo), float(hi)) for p, lo, hi in zip(law.params, low, high)},
        not_identified=tuple(p for p in law.params if p in reasons), flag_reasons=reasons, centre=centre,
        cells=cells, excluded=tuple(excluded), chi2=chi2, dof=dof, chi2_expected=expected, inflation=inflation,
        std_residuals=resid, fitted_acc=1.0 - pred, seed_rel_sd=float(seed_rel_sd), n_boot=len(draws),
        n_starts=len(problem.starts), loss=loss, theta=theta, draws=draws, notes=tuple(notes))


def _usable(cells: Cells, law: Law) -> tuple[Cells, list[str]]:
    """The cells the law can use: a per-width law needs ≥ 2 epochs values per width; laws in N need num_params."""
    keep = np.ones(len(cells), dtype=bool)
    why = []
    name = law.name
    if not law.uses_num_params:
        for w in np.unique(cells.width):
            here = cells.width == w
            if here.sum() < 2:
                keep &= ~here
                why.append(f"width {w:g} ({', '.join(np.array(cells.labels())[here])}): one epochs value, the "
                           "per-width law needs two to fit its own floor and coefficient")
        if not keep.any():
            raise NotEnoughPointsError(f"the {name} law", 2, 1, "epochs values at some width",
                                       "each width needs two epochs values for its own floor and coefficient")
    else:
        bad = ~(np.isfinite(cells.num_params) & (cells.num_params > 0))
        if bad.all():
            raise AnalysisError(f"the {name} law needs `num_params`, which no record has (results/README.md)")
        if bad.any():
            keep &= ~bad
            why += [f"{label}: no num_params in its records" for label in np.array(cells.labels())[bad]]
    return cells.select(keep), why


def _check_enough(law: Law, cells: Cells) -> None:
    what = f"the {law.name} law"
    if len(cells) < law.n_params + 1:
        raise NotEnoughPointsError(what, law.n_params + 1, len(cells), "distinct cells",
                                   f"{law.n_params} parameters: {', '.join(law.params)}")
    variables = [("epochs", cells.epochs)] + ([("num_params", cells.num_params)] if law.uses_num_params else [])
    for variable, values in variables:
        distinct = len(np.unique(values))
        if distinct < _MIN_DISTINCT:
            raise NotEnoughPointsError(what, _MIN_DISTINCT, distinct, f"distinct {variable} values",
                                       "two values cannot separate a coefficient, its exponent and the floor")


def _points(cells: Cells, law: Law, centre: dict) -> Points:
    group = law.groups(cells.width)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.log(cells.num_params / centre["num_params"]) if law.uses_num_params else np.zeros(len(cells))
    return Points(u=u, v=np.log(cells.epochs / centre["epochs"]), epochs=cells.epochs.astype(float),
                  log_e0=float(np.log(centre["epochs"])), group=group)


def _bootstrap(problem: Problem, ys: np.ndarray, ses: np.ndarray, theta: np.ndarray, boot_from: str,
               n_jobs: int) -> np.ndarray:
    if not len(ys):
        return np.empty((0, len(theta)))
    starts = theta[None, :] if boot_from == "point" else np.vstack([theta, problem.starts])
    if n_jobs == 1:
        return _fit_draws(problem, ys, ses, starts)
    chunks = np.array_split(np.arange(len(ys)), min(len(ys), max(1, abs(n_jobs) if n_jobs > 0 else 2)))
    parts = Parallel(n_jobs=n_jobs)(delayed(_fit_draws)(problem, ys[c], ses[c], starts) for c in chunks)
    return np.concatenate(parts)


def _fit_draws(problem: Problem, ys: np.ndarray, ses: np.ndarray, starts: np.ndarray) -> np.ndarray:
    with one_blas_thread():  # again: a joblib worker is a fresh process
        return np.array([solve(problem, y=y, se=se, starts=starts)[0] for y, se in zip(ys, ses)])


def _flags(law: Law, theta: np.ndarray, draws: np.ndarray, problem: Problem) -> dict:
    """name → reason, for every parameter the data do not pin down (see the module docstring)."""
    lower, upper = problem.lower, problem.upper
    tol = 1e-3 * (upper - lower)
    reasons = {}
    low = high = None
    if len(draws):
        low, high = np.percentile(draws, [2.5, 97.5], axis=0)
        shown_low, shown_high = np.percentile(law.display(draws), [2.5, 97.5], axis=0)
    for k, name in enumerate(law.params):
        if theta[k] - lower[k] <= tol[k]:
            reasons[name] = Flag(AT_BOUND, LOWER, _bound(law, k, lower))
        elif upper[k] - theta[k] <= tol[k]:
            reasons[name] = Flag(AT_BOUND, UPPER, _bound(law, k, upper))
        elif low is not None and low[k] - lower[k] <= tol[k]:
            reasons[name] = Flag(INTERVAL_AT_BOUND, LOWER, _bound(law, k, lower))
        elif low is not None and upper[k] - high[k] <= tol[k]:
            reasons[name] = Flag(INTERVAL_AT_BOUND, UPPER, _bound(law, k, upper))
        elif low is not None and shown_low[k] > 0 and np.log10(shown_high[k] / shown_low[k]) > SPAN_ORDERS:
            reasons[name] = Flag(WIDE_INTERVAL, value=float(np.log10(shown_high[k] / shown_low[k])))
    for exponent, coef in law.term_of.items():  # a coefficient that may be 0 takes its term's exponent with it
        if coef in reasons and exponent not in reasons and reasons[coef].reaches_lower:
            reasons[exponent] = Flag(TERM_VANISHES, term=coef)
    coefs = [p for p, kind in zip(law.params, law.kinds) if kind == COEF]
    if not law.uses_num_params and all(p in reasons and reasons[p].reaches_lower for p in coefs) and "beta" not in reasons:
        reasons["beta"] = Flag(TERM_VANISHES)
    return {p: reasons[p] for p in law.params if p in reasons}


def _bound(law: Law, k: int, values: np.ndarray) -> float:
    return float(values[k]) if law.kinds[k] in (FLOOR, EXPONENT) else float(np.exp(values[k]))
