"""Welch's t-test and the equivalence test built on it (TOST: two one-sided Welch tests), from two samples.

A non-significant Welch test only says a difference was not detected; "equivalent" needs the opposite claim, that
any difference is smaller than a margin that matters. TOST makes that claim at level ALPHA exactly when the
(1 - 2·ALPHA) Welch interval of the difference lies inside ±margin (Schuirmann 1987). Used by analysis's
`compare` and by the GPU proof (speedrun's verify), which cannot load the analysis package, so the arithmetic
lives here: the standard library, and scipy's t distribution imported when a p-value is asked for.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

__all__ = ["ALPHA", "EQUIVALENCE_MARGIN", "Welch", "welch", "welch_p", "welch_interval", "tost_p"]

ALPHA = 0.05
# ±0.2 accuracy points, as a fraction: about 1.5 seed SDs of the published width-128 × 80-epoch runs.
EQUIVALENCE_MARGIN = 0.002


@dataclass(frozen=True)
class Welch:
    """mean(a) - mean(b), its standard error and the Welch-Satterthwaite degrees of freedom."""

    diff: float
    se: float
    df: float

    @property
    def t(self) -> float:
        return self.diff / self.se


def welch(a, b) -> Welch | None:
    """The Welch parts of two samples (each needs 2 or more values); None when both are constant (no spread)."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's test needs 2 or more values on each side (have {len(a)} and {len(b)})")
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se2 = va + vb
    if se2 <= 0:
        return None
    df = se2 ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return Welch(statistics.fmean(a) - statistics.fmean(b), math.sqrt(se2), df)


def welch_p(w: Welch) -> float:
    """Two-sided p-value of mean(a) = mean(b)."""
    from scipy import stats

    return float(2 * stats.t.sf(abs(w.t), w.df))


def welch_interval(w: Welch, level: float) -> tuple[float, float]:
    """The `level` (e.g. 0.95) two-sided interval of mean(a) - mean(b)."""
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, w.df)) * w.se
    return w.diff - half, w.diff + half


def tost_p(w: Welch, margin: float) -> float:
    """TOST p-value of |mean(a) - mean(b)| < margin: the larger of the two one-sided p-values (H0: diff <= -margin;
    H0: diff >= +margin). Equivalent at level ALPHA when it is below ALPHA."""
    from scipy import stats

    p_low = float(stats.t.sf((w.diff + margin) / w.se, w.df))
    p_high = float(stats.t.cdf((w.diff - margin) / w.se, w.df))
    return max(p_low, p_high)
