"""Grid cells as the fits see them: each cell's mean error, its run count, and the seed noise of its mean.

A law is fitted to cell means of log error by weighted least squares; var(log ē) ≈ (sd/ē)²/n, so each cell's
weight comes from its seed SD relative to its error, sd/ē, and its number of runs n. Seed noise is modelled on
that same scale: one run's SD is taken to be proportional to the cell's error (a constant SD of log error).
On cpu-scaling's 16 cells of three runs (its 12 and its four checks' cells: width 8-64 × 3-80 epochs), the log
of each cell's variance rises with its log squared error at a slope of 1.38 ± 0.43 (0: a constant SD in
accuracy; 1: proportional), and the proportional model's likelihood beats the constant one's by 10.5 log units
with one parameter each: the runs scatter 1.3 points at 27% error but 0.1-0.2 points at 6-8%. The relative SD
used:

- cells with n ≥ 3: the cell's own sample variance of sd/ē, moderated towards the study's pooled within-cell
  value with PRIOR_DOF degrees of freedom (Smyth 2004). Three runs give a variance with 2 degrees of freedom,
  which is below a quarter of the truth one time in nine: unmoderated, that cell would get 4× its weight and
  the standardised residuals a t-distribution with infinite variance.
- cells with n < 3: the pooled within-cell relative SD (n − 1 weighted over every cell with n ≥ 2).
- if no cell has two runs, or every cell's runs are identical, there is no measure of seed noise: the fit then
  assumes one relative SD for every cell and estimates it from its own residuals ("residual" mode, said in the
  report).

`sd_at(acc)` turns the pooled relative SD into one run's SD in accuracy at any cell (a prediction's, a check's).
`noise_scaling(cells)` tests the assumption on each study (the report shows it): the slope of the cells' log
variance against their log squared error, and the likelihood of the proportional model against the constant one.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import special

from common.pooling import FIT_PRIOR_DOF, moderated_variance

from .aggregates import ok_runs
from .errors import AnalysisError
from .records import METRIC

__all__ = ["Cells", "cell_table", "NoiseScaling", "noise_scaling", "PRIOR_DOF", "MIN_ERROR"]

PRIOR_DOF = FIT_PRIOR_DOF  # the pool's weight in a cell's moderated variance (common.pooling: why not the scheduler's)
MIN_ERROR = 1e-6  # cell-mean errors are floored here before taking logs (a perfect score on a tiny test set)


@dataclass(frozen=True)
class Cells:
    """One entry per grid cell (width × epochs), sorted by width then epochs."""

    width: np.ndarray
    epochs: np.ndarray
    num_params: np.ndarray  # NaN where the records lack it
    n: np.ndarray  # ok runs in the cell
    acc: np.ndarray  # mean ema_val_acc
    sd_own: np.ndarray  # the cell's sample SD (ddof 1), NaN for n = 1
    sd: np.ndarray  # SD (accuracy units) used for the cell's weight (see module docstring); NaN in residual mode
    seed_rel_sd: float  # pooled within-cell SD of one run as a fraction of its cell's error; NaN with no replicates
    seed_dof: int  # its degrees of freedom, Σ (n − 1)
    mode: str  # "cells" (seed noise measured) or "residual" (estimated from the fit; see module docstring)
    stat_dof: np.ndarray  # degrees of freedom behind each cell's SD (for the expected χ²)

    def __len__(self) -> int:
        return len(self.width)

    @property
    def error(self) -> np.ndarray:
        return np.maximum(1.0 - self.acc, MIN_ERROR)

    @property
    def log_error(self) -> np.ndarray:
        return np.log(self.error)

    @property
    def se_log(self) -> np.ndarray:
        """Standard error of each cell's log mean error (NaN in residual mode, before the fit sets the scale)."""
        return self.sd / (np.sqrt(self.n) * self.error)

    @property
    def sem(self) -> np.ndarray:
        """Standard error of each cell's mean accuracy, with the SD rule above (pooled SD where n < 3)."""
        return self.sd / np.sqrt(self.n)

    def sem_or(self, rel_sd: float) -> np.ndarray:
        """`sem`, or where the cells have no replicates to measure it (residual mode), rel_sd × error / √n: a
        fitted law's relative residual SD standing in for seed noise."""
        return self.sem if self.mode == "cells" else rel_sd * self.error / np.sqrt(self.n)

    def sd_at(self, acc, rel_sd: float | None = None):
        """One run's SD (accuracy units) at a cell whose mean accuracy is `acc`: the pooled relative SD (or
        `rel_sd`) times the error there."""
        rel = self.seed_rel_sd if rel_sd is None else rel_sd
        return rel * np.maximum(1.0 - np.asarray(acc, dtype=float), MIN_ERROR)

    @property
    def n_runs(self) -> int:
        return int(self.n.sum())

    def labels(self) -> list[str]:
        return [f"{w:g}×{e:g}" for w, e in zip(self.width, self.epochs)]

    def select(self, keep: np.ndarray) -> "Cells":
        """The cells where `keep` (a boolean mask) is true; the seed-noise estimate stays the study's."""
        keep = np.asarray(keep, dtype=bool)
        return replace(self, width=self.width[keep], epochs=self.epochs[keep], num_params=self.num_params[keep],
                       n=self.n[keep], acc=self.acc[keep], sd_own=self.sd_own[keep], sd=self.sd[keep],
                       stat_dof=self.stat_dof[keep])

    def index(self, width, epochs) -> int | None:
        hits = np.flatnonzero((self.width == width) & (self.epochs == epochs))
        return int(hits[0]) if len(hits) else None


def cell_table(frame: pd.DataFrame) -> Cells:
    """Cells of the ok runs in `frame` (one value of every knob other than width, epochs and seed)."""
    runs = ok_runs(frame)
    for column in ("width", "epochs"):
        if column not in runs:
            raise AnalysisError(f"the runs have no `{column}` column; load records with analysis.load(dir)")
    params = pd.to_numeric(runs["num_params"], errors="coerce") if "num_params" in runs else np.nan
    frame = pd.DataFrame({"width": runs["width"].astype(float), "epochs": runs["epochs"].astype(float),
                          "acc": runs[METRIC].astype(float), "num_params": params})
    grouped = frame.groupby(["width", "epochs"], sort=True)
    stats = grouped.agg(n=("acc", "size"), acc=("acc", "mean"), sd=("acc", "std"), num_params=("num_params", "mean"))
    n = stats["n"].to_numpy(dtype=int)
    error = np.maximum(1.0 - stats["acc"].to_numpy(dtype=float), MIN_ERROR)
    sd_own = stats["sd"].to_numpy(dtype=float)
    rel_own = sd_own / error
    replicated = n >= 2
    seed_dof = int((n[replicated] - 1).sum())
    rel_var = float(((n[replicated] - 1) * rel_own[replicated] ** 2).sum() / seed_dof) if seed_dof else float("nan")
    if seed_dof and rel_var > 0:
        own_dof = np.where(n >= 3, n - 1, 0).astype(float)
        own_var = np.where(n >= 3, np.nan_to_num(rel_own) ** 2, 0.0)
        var = moderated_variance(own_var, own_dof, rel_var, PRIOR_DOF)
        sd = np.where(n >= 3, np.sqrt(var), np.sqrt(rel_var)) * error
        stat_dof = np.where(n >= 3, own_dof + PRIOR_DOF, float(seed_dof))
        mode = "cells"
    else:
        sd = np.full(len(n), np.nan)
        stat_dof = np.full(len(n), np.inf)
        mode = "residual"
    index = stats.index.to_frame(index=False)
    return Cells(width=index["width"].to_numpy(), epochs=index["epochs"].to_numpy(),
                 num_params=stats["num_params"].to_numpy(dtype=float), n=n, acc=stats["acc"].to_numpy(dtype=float),
                 sd_own=sd_own, sd=sd, seed_rel_sd=float(np.sqrt(rel_var)) if seed_dof else float("nan"),
                 seed_dof=seed_dof, mode=mode, stat_dof=stat_dof)


@dataclass(frozen=True)
class NoiseScaling:
    """How one run's SD grows with the cell's error, from the cells with two or more differing runs."""

    n_cells: int
    slope: float  # of log variance on log squared error: 0 for a constant SD, 1 for an SD proportional to error
    slope_se: float
    loglik_gain: float  # log-likelihood of the proportional model minus the constant one's (one parameter each)

    def verdict(self) -> str:
        """What the cells say about the proportional model the fits assume."""
        if self.loglik_gain > 2:
            return "the cells favour it"
        if self.loglik_gain < -2:
            return "the cells favour a constant SD instead: intervals at accurate cells may be too narrow"
        return "the cells cannot tell it from a constant SD"


def noise_scaling(cells: Cells) -> NoiseScaling | None:
    """The test behind the noise model (module docstring); None with fewer than three cells to test on. A sample
    variance on d degrees of freedom has E[log s²] = log σ² + ψ(d/2) − log(d/2) and var ψ′(d/2), so the slope is
    a weighted least-squares fit of the bias-corrected log variances; the likelihoods are those of the sample
    variances under σ² = c (constant) and σ² = c·error² (proportional), each c at its maximum."""
    d = (cells.n - 1).astype(float)
    keep = (d > 0) & (np.nan_to_num(cells.sd_own) > 0)
    if keep.sum() < 3:
        return None
    d, var, error = d[keep], cells.sd_own[keep] ** 2, cells.error[keep]
    x = np.log(error**2)
    y = np.log(var) - (special.digamma(d / 2) - np.log(d / 2))
    w = 1.0 / special.polygamma(1, d / 2)
    xm = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = float(np.sum(w * (x - xm) * (y - np.sum(w * y) / np.sum(w))) / sxx) if sxx > 0 else float("nan")

    def loglik(shape):  # sample variances ~ σ²·χ²_d / d with σ² = c·shape, c at its maximum
        c = np.sum(d * var / shape) / np.sum(d)
        return float(np.sum(-d / 2 * np.log(c * shape) - d * var / (2 * c * shape)))

    return NoiseScaling(int(keep.sum()), slope, float(sxx**-0.5) if sxx > 0 else float("nan"),
                        loglik(error**2) - loglik(np.ones_like(error)))
