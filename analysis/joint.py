"""The out-of-sample checks of a study (analysis.checks) taken together under one law: their predictions come
from one fit, so their errors are correlated, and a z per check cannot say whether the law misses them as a
whole. `joint_checks` runs the test on a report's checks; `joint_test` on any set of checks with their means (the
calibration in analysis.bench.calibrate_checks simulates them)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .errors import NotComputed
from .fits import FitResult
from .predict import predict_acc
from .records import METRIC

__all__ = ["JointCheck", "joint_checks", "joint_test", "JOINT_ALPHA"]

JOINT_ALPHA = 0.05  # the level at which the checks taken together reject a law


@dataclass(frozen=True)
class JointCheck:
    """Every observed check under one law at once. The checks are predicted by one fit, so their prediction errors
    are correlated (`max_corr`). With r the like-for-like runs' means minus the predictions and C the bootstrap
    covariance of the predictions plus each check's seed noise (one run's SD there, squared, / n) on its diagonal:
    - χ² = rᵀC⁻¹r on k degrees of freedom: does every check land where the law says, taken together?
    - the common offset, the generalised least-squares mean of r (SE (1ᵀC⁻¹1)^−½): does the law sit above or
      below the checks as a whole? A law that overstates (or understates) every check shows here first."""

    law: str
    checks: tuple  # the Checks taken together
    residuals: tuple  # observed − predicted mean, per check (fractions)
    chi2: float
    p: float
    offset: float  # observed − predicted, common to all checks (fraction)
    offset_se: float
    max_corr: float  # the largest correlation between two checks' predictions
    left_out: tuple = ()  # (Check, why) for observed checks this law does not take

    @property
    def k(self) -> int:
        return len(self.checks)

    @property
    def misses(self) -> bool:
        """True when the checks, taken together, reject the law at JOINT_ALPHA."""
        return self.p < JOINT_ALPHA  # False for NaN

    @property
    def offset_z(self) -> float:
        return self.offset / self.offset_se if self.offset_se > 0 else math.nan

    @property
    def offset_ci(self) -> tuple[float, float]:
        half = stats.norm.ppf(0.975) * self.offset_se
        return self.offset - half, self.offset + half


def joint_checks(results, fits) -> list[JointCheck]:
    """A JointCheck for each law in `fits` (FitResults) that predicts two or more of the observed checks in
    `results` (CheckResults) from bootstrap draws; only like-for-like records count, as in each check's own z."""
    observed = [r for r in results if r.observed]
    joint = []
    for fit in fits:
        if len(fit.draws) < 2:
            continue
        used, left_out = [], []
        for r in observed:
            if not r.n_like:
                left_out.append((r.check, "no like-for-like records"))
                continue
            prediction = r.predictions().get(fit.name)
            if prediction is None:
                why = dict(r.alternatives).get(fit.name)
                left_out.append((r.check, why.reason if isinstance(why, NotComputed) else "the law did not predict it"))
                continue
            rows = r.compared()  # like-for-like: the rest were left out above
            used.append((r.check, prediction.num_params, float(np.mean(rows[METRIC])), len(rows)))
        if len(used) >= 2:
            checks, num_params, means, counts = zip(*used)
            joint.append(joint_test(fit, checks, num_params, means, counts, tuple(left_out)))
    return joint


def joint_test(fit: FitResult, checks, num_params, means, counts, left_out: tuple = ()) -> JointCheck:
    """The joint test of `fit` on `checks` (Checks: their width and epochs), whose like-for-like runs average
    `means` (fractions) over `counts` runs; `num_params` per check as the prediction used it (NaN for the
    per-width law). Needs the fit's bootstrap draws."""
    widths = np.array([c.width for c in checks], dtype=float)
    epochs = np.array([c.epochs for c in checks], dtype=float)
    point, draws = predict_acc(fit, np.asarray(num_params, dtype=float), epochs, widths)
    noise = fit.seed_sd_at(point) ** 2 / np.asarray(counts, dtype=float)
    return _joint(fit.name, tuple(checks), np.asarray(means, dtype=float) - point, noise, draws, left_out)


def _joint(law: str, checks: tuple, residuals: np.ndarray, noise: np.ndarray, draws: np.ndarray,
           left_out: tuple) -> JointCheck:
    """`noise`: each check's variance of its mean from seed noise alone (one run's variance / its runs)."""
    prediction_cov = np.cov(draws, rowvar=False)
    cov = prediction_cov + np.diag(noise)
    inverse = np.linalg.pinv(cov)
    ones = np.ones(len(checks))
    chi2 = float(residuals @ inverse @ residuals)
    weight = float(ones @ inverse @ ones)
    sd = np.sqrt(np.diag(prediction_cov))
    corr = prediction_cov / np.outer(sd, sd) if (sd > 0).all() else np.full_like(prediction_cov, np.nan)
    off_diagonal = corr[~np.eye(len(checks), dtype=bool)]
    return JointCheck(law, checks, tuple(float(v) for v in residuals), chi2,
                      float(stats.chi2.sf(chi2, len(checks))), float(ones @ inverse @ residuals) / weight,
                      weight**-0.5, float(np.nanmax(off_diagonal)), left_out)
