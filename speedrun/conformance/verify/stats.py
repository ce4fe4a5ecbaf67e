"""The side-by-side's statistics: per-arm summaries, Welch's t-test and a two one-sided tests equivalence check
(TOST, Welch form) on final EMA accuracy, and the time ratio. The tests' arithmetic is common.welch's, the same
that analysis's `compare` uses (this proof cannot load the analysis package: it needs more than the GPU machine
has)."""
from __future__ import annotations

import statistics

from common.welch import ALPHA, EQUIVALENCE_MARGIN, tost_p, welch as welch_parts, welch_interval, welch_p

__all__ = ["MARGIN", "ALPHA", "arm_summary", "welch", "tost", "time_ratio"]

MARGIN = EQUIVALENCE_MARGIN  # ±0.2 points on accuracy (a fraction), as analysis's `compare`


def arm_summary(runs: list[dict]) -> dict:
    """n, mean and SD of ema_val_acc over every run; the median train_time_s over runs that were not their
    process's first (the first pays for cuDNN's algorithm search, allocator growth, lazy loading)."""
    accs = [r["ema_val_acc"] for r in runs if r.get("ema_val_acc") is not None]
    timed = [r["train_time_s"] for r in runs if not r["first_in_process"] and r.get("train_time_s") is not None]
    return dict(n=len(accs), ema_val_acc_mean=statistics.fmean(accs) if accs else None,
                ema_val_acc_sd=statistics.stdev(accs) if len(accs) > 1 else None,
                n_timed=len(timed), median_train_time_s=statistics.median(timed) if timed else None,
                ema_val_acc=accs, train_time_s=timed)


def welch(a: list[float], b: list[float]) -> dict:
    """Welch's two-sided t-test of mean(a) = mean(b); `p > ALPHA` means no difference was detected."""
    if len(a) < 2 or len(b) < 2:
        return dict(p=None, why=f"needs 2 or more runs on each side (have {len(a)} and {len(b)})")
    parts = welch_parts(a, b)
    if parts is None:
        return dict(p=None, why="both samples are constant")
    return dict(diff=parts.diff, t=parts.t, df=parts.df, p=welch_p(parts))


def tost(a: list[float], b: list[float], margin: float = MARGIN) -> dict:
    """Two one-sided Welch tests of |mean(a) - mean(b)| < margin; equivalent when both reject at ALPHA (p is
    the larger one-sided p), i.e. when the 90% interval of the difference lies inside ±margin."""
    if len(a) < 2 or len(b) < 2:
        return dict(p=None, equivalent=None, why=f"needs 2 or more runs on each side (have {len(a)} and {len(b)})")
    parts = welch_parts(a, b)
    if parts is None:
        return dict(p=None, equivalent=None, why="both samples are constant")
    p = tost_p(parts, margin)
    return dict(diff=parts.diff, margin=margin, df=parts.df, p=p, ci90=welch_interval(parts, 1 - 2 * ALPHA),
                equivalent=p < ALPHA)


def time_ratio(ours: dict, seed: dict) -> float | None:
    """Median training time of ours over the seed's (each excluding its processes' first runs)."""
    a, b = ours.get("median_train_time_s"), seed.get("median_train_time_s")
    return a / b if a is not None and b else None
