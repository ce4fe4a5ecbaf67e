"""The side-by-side's statistics: per-arm summaries, Welch's t-test and a two one-sided tests equivalence check
(TOST, Welch form) on final EMA accuracy, and the time ratio. scipy only (no analysis package: it needs more
than the GPU machine has)."""
from __future__ import annotations

import math
import statistics

__all__ = ["MARGIN", "ALPHA", "arm_summary", "welch", "tost", "time_ratio"]

MARGIN = 0.002  # equivalence margin on accuracy: ±0.2 points (accuracies are fractions)
ALPHA = 0.05


def arm_summary(runs: list[dict]) -> dict:
    """n, mean and SD of ema_val_acc over every run; the median train_time_s over runs that were not their
    process's first (the first pays for cuDNN's algorithm search, allocator growth, lazy loading)."""
    accs = [r["ema_val_acc"] for r in runs if r.get("ema_val_acc") is not None]
    timed = [r["train_time_s"] for r in runs if not r["first_in_process"] and r.get("train_time_s") is not None]
    return dict(n=len(accs), ema_val_acc_mean=statistics.fmean(accs) if accs else None,
                ema_val_acc_sd=statistics.stdev(accs) if len(accs) > 1 else None,
                n_timed=len(timed), median_train_time_s=statistics.median(timed) if timed else None,
                ema_val_acc=accs, train_time_s=timed)


def _welch_parts(a: list[float], b: list[float]):
    va, vb = statistics.variance(a), statistics.variance(b)
    se2 = va / len(a) + vb / len(b)
    if se2 <= 0:
        return None
    df = se2 ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    return statistics.fmean(a) - statistics.fmean(b), math.sqrt(se2), df


def welch(a: list[float], b: list[float]) -> dict:
    """Welch's two-sided t-test of mean(a) = mean(b); `p > ALPHA` means no difference was detected."""
    if len(a) < 2 or len(b) < 2:
        return dict(p=None, why=f"needs 2 or more runs on each side (have {len(a)} and {len(b)})")
    parts = _welch_parts(a, b)
    if parts is None:
        return dict(p=None, why="both samples are constant")
    from scipy import stats

    diff, se, df = parts
    t = diff / se
    return dict(diff=diff, t=t, df=df, p=float(2 * stats.t.sf(abs(t), df)))


def tost(a: list[float], b: list[float], margin: float = MARGIN) -> dict:
    """Two one-sided Welch tests of |mean(a) - mean(b)| < margin; equivalent when both reject at ALPHA (p is
    the larger one-sided p), i.e. when the 90% interval of the difference lies inside ±margin."""
    if len(a) < 2 or len(b) < 2:
        return dict(p=None, equivalent=None, why=f"needs 2 or more runs on each side (have {len(a)} and {len(b)})")
    parts = _welch_parts(a, b)
    if parts is None:
        return dict(p=None, equivalent=None, why="both samples are constant")
    from scipy import stats

    diff, se, df = parts
    p_low = float(stats.t.sf((diff + margin) / se, df))  # H0: diff <= -margin
    p_high = float(stats.t.cdf((diff - margin) / se, df))  # H0: diff >= +margin
    half = float(stats.t.ppf(1 - ALPHA, df)) * se
    p = max(p_low, p_high)
    return dict(diff=diff, margin=margin, df=df, p=p, ci90=(diff - half, diff + half), equivalent=p < ALPHA)


def time_ratio(ours: dict, seed: dict) -> float | None:
    """Median training time of ours over the seed's (each excluding its processes' first runs)."""
    a, b = ours.get("median_train_time_s"), seed.get("median_train_time_s")
    return a / b if a is not None and b else None
