"""Fit the scaling laws of `laws.py` to run records, with 95% bootstrap intervals on every parameter.

error = 1 − ema_val_acc. The law is fitted to each grid cell's mean error over its seeds. The point estimate
and every bootstrap draw are fitted the same way (Huber loss on log residuals, L-BFGS-B from the full start
grid; see optimize.py); draws resample the runs (seeds) within each grid cell.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .aggregates import cell_columns, ok_runs
from .bootstrap import bootstrap_params, cell_groups, draw_rows, percentile_interval
from .errors import AnalysisError, NotEnoughPointsError
from .laws import LAWS, Law, compute_law, epochs_law, joint_law, log_error
from .optimize import cell_errors, fit_problem, make_problem, to_raw
from .records import METRIC

__all__ = ["FitResult", "FitSkipped", "fit", "fit_law", "fit_epochs_law", "fit_epochs_laws", "fit_joint_law",
           "fit_compute_law"]
_MIN_DISTINCT_PER_VARIABLE = 3  # two values of a variable cannot separate its coefficient, exponent and floor


@dataclass(frozen=True)
class FitResult:
    """A fitted law: point estimates, 95% percentile-bootstrap intervals, and the draws behind them."""

    law: str  # "epochs", "joint" or "compute"
    formula: str  # e.g. "error = c + a·epochs^(−b)", error = 1 − ema_val_acc
    variables: tuple[str, ...]  # record columns the law takes, in order
    params: dict[str, float]  # point estimates, in the law's own units
    intervals: dict[str, tuple[float, float]]  # 95% bootstrap intervals (NaN if n_boot = 0)
    n_points: int  # runs fitted
    n_cells: int  # grid cells (the law is fitted to their mean errors)
    n_boot: int  # bootstrap draws
    residual_rmse: float  # root-mean-square of observed cell-mean error − fitted error, over cells
    loss: float  # mean Huber loss (/δ) of log residuals at the optimum
    n_starts: int  # L-BFGS-B starts per fit (point estimate and each draw)
    subset: dict = field(default_factory=dict)  # fixed columns, e.g. {"width": 64} for a per-width law
    size_of_width: dict = field(default_factory=dict)  # width → num_params seen, for predict(width=...)
    note: str = ""  # caveats, e.g. cells with a single run (nothing to resample there)
    draws: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False, compare=False)

    def summary(self) -> str:
        where = "".join(f" at {k}={v}" for k, v in self.subset.items())
        lines = [f"{self.law} law{where}: {self.formula}   (error = 1 − {METRIC})",
                 f"  {self.n_points} runs in {self.n_cells} cells, {self.n_boot} bootstrap draws, "
                 f"residual RMSE {self.residual_rmse:.4g}"]
        for name, value in self.params.items():
            low, high = self.intervals[name]
            lines.append(f"  {name:>6} = {value:.4g}   95% interval [{low:.4g}, {high:.4g}]")
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


@dataclass(frozen=True)
class FitSkipped:
    """A law that could not be fitted to part of the data, and why (e.g. not enough points)."""

    law: str
    subset: dict
    reason: str


def fit(frame: pd.DataFrame, law: str = "joint", **options) -> FitResult:
    """Fit the named law ('epochs', 'joint' or 'compute'); options go to fit_<law>_law."""
    functions = {"epochs": fit_epochs_law, "joint": fit_joint_law, "compute": fit_compute_law}
    if law not in functions:
        raise AnalysisError(f"unknown law {law!r}; valid laws: {', '.join(LAWS)}")
    return functions[law](frame, **options)


def fit_epochs_law(frame: pd.DataFrame, width: int | None = None, *, n_boot: int = 200, n_jobs: int = 1,
                   seed: int = 0) -> FitResult:
    """error(epochs) = c + a·epochs^(−b) at one width (`width`, or the frame's only width)."""
    runs = ok_runs(frame)
    widths = sorted(runs["width"].unique())
    if width is None:
        if len(widths) != 1:
            raise AnalysisError(f"the runs have widths {widths}; pass width=... or use fit_epochs_laws")
        width = widths[0]
    if width not in widths:
        raise AnalysisError(f"no ok runs at width={width}; widths present: {widths}")
    return fit_law(runs[runs["width"] == width], epochs_law(), n_boot=n_boot, n_jobs=n_jobs, seed=seed,
                   subset={"width": _plain(width)})


def fit_epochs_laws(frame: pd.DataFrame, **options) -> dict:
    """{width: FitResult or FitSkipped} for every width in the frame."""
    out = {}
    for width in sorted(ok_runs(frame)["width"].unique()):
        try:
            out[_plain(width)] = fit_epochs_law(frame, width, **options)
        except NotEnoughPointsError as exc:
            out[_plain(width)] = FitSkipped("epochs", {"width": _plain(width)}, str(exc))
    return out


def fit_joint_law(frame: pd.DataFrame, *, size: str = "auto", n_boot: int = 200, n_jobs: int = 1,
                  seed: int = 0) -> FitResult:
    """error(N, epochs) = e_inf + A·N^(−alpha) + B·epochs^(−beta); N is `num_params` (size='auto' when every
    run has it) or `width`."""
    runs = ok_runs(frame)
    if size == "auto":
        has_params = "num_params" in runs and pd.to_numeric(runs["num_params"], errors="coerce").notna().all()
        size = "num_params" if has_params else "width"
    return fit_law(runs, joint_law(size), n_boot=n_boot, n_jobs=n_jobs, seed=seed)


def fit_compute_law(frame: pd.DataFrame, *, n_boot: int = 200, n_jobs: int = 1, seed: int = 0) -> FitResult:
    """error(train_flops) = e_inf + A·train_flops^(−alpha) over all runs."""
    return fit_law(frame, compute_law(), n_boot=n_boot, n_jobs=n_jobs, seed=seed)


def fit_law(frame: pd.DataFrame, law: Law, *, n_boot: int = 200, n_jobs: int = 1, seed: int = 0,
            subset: dict | None = None) -> FitResult:
    """Fit `law` to the ok runs of `frame`: point estimate plus `n_boot` bootstrap refits (seeded by `seed`)."""
    if n_boot < 0:
        raise AnalysisError(f"n_boot={n_boot}: expected 0 (no intervals) or more bootstrap draws")
    runs = ok_runs(frame)
    cells = cell_columns(runs)
    others = [c for c in cells if c not in ("width", "epochs")]
    if others:
        raise AnalysisError(f"the runs also vary in {others}; a law in width and epochs needs them fixed: "
                            f"select one value first, e.g. frame[frame[{others[0]!r}] == value]")
    x = _variables(runs, law)
    _check_enough(law, x, subset)

    groups = cell_groups(runs[cells].to_numpy())
    cell = np.empty(len(runs), dtype=int)
    for k, rows in enumerate(groups):
        cell[rows] = k
    problem = make_problem(law, x, 1.0 - runs[METRIC].to_numpy(dtype=float), cell)
    theta, loss = fit_problem(problem)
    params = to_raw(problem, theta)[0]
    sizes = np.array([len(rows) for rows in groups])
    note = ""
    if sizes.max() < 2:  # resampling one run gives that run back: intervals would be zero-width fiction
        note = "every cell has a single run, so the bootstrap over seeds has nothing to resample: no intervals"
        n_boot = 0
    elif sizes.min() < 2:
        note = (f"{int((sizes < 2).sum())} of {len(sizes)} cells have a single run; their seeds cannot be "
                "resampled, so the intervals are somewhat too narrow")
    draws = bootstrap_params(problem, draw_rows(groups, n_boot, seed), n_jobs)
    low, high = percentile_interval(draws)
    fitted = np.exp(log_error(law, params, np.exp(problem.logx + problem.log_scale)))
    observed = cell_errors(problem)
    widths = runs.groupby("width")["num_params"].first() if "num_params" in runs else pd.Series(dtype=float)
    return FitResult(
        law=law.name, formula=law.formula, variables=law.variables,
        params={name: float(v) for name, v in zip(law.params, params)},
        intervals={name: (float(lo), float(hi)) for name, lo, hi in zip(law.params, low, high)},
        n_points=len(runs), n_cells=len(groups), n_boot=len(draws),
        residual_rmse=float(np.sqrt(np.mean((observed - fitted) ** 2))), loss=loss, n_starts=len(problem.starts),
        subset=dict(subset or {}), size_of_width={_plain(w): float(n) for w, n in widths.dropna().items()},
        note=note, draws=draws)


def _variables(runs: pd.DataFrame, law: Law) -> np.ndarray:
    columns = []
    for name in law.variables:
        if name not in runs:
            raise AnalysisError(f"the {law.name} law needs column `{name}`, which the records lack "
                                f"(see results/README.md)")
        values = pd.to_numeric(runs[name], errors="coerce").to_numpy(dtype=float)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            example = f" (e.g. run_id {runs['run_id'].iloc[np.argmax(bad)]})" if "run_id" in runs else ""
            raise AnalysisError(f"the {law.name} law needs a positive `{name}` in every run; {bad.sum()} of "
                                f"{len(values)} runs have none{example}")
        columns.append(values)
    return np.column_stack(columns)


def _check_enough(law: Law, x: np.ndarray, subset: dict | None) -> None:
    what = f"the {law.name} law" + "".join(f" at {k}={v}" for k, v in (subset or {}).items())
    n_cells = len(np.unique(x, axis=0))
    need = len(law.params) + 1
    if n_cells < need:
        raise NotEnoughPointsError(what, need, n_cells, "distinct cells",
                                   f"{len(law.params)} parameters: {', '.join(law.params)}")
    for k, name in enumerate(law.variables):
        distinct = len(np.unique(x[:, k]))
        if distinct < _MIN_DISTINCT_PER_VARIABLE:
            raise NotEnoughPointsError(what, _MIN_DISTINCT_PER_VARIABLE, distinct, f"distinct {name} values")


def _plain(value):
    """numpy scalar → Python scalar, so dict keys and reports print cleanly."""
    return value.item() if isinstance(value, np.generic) else value
