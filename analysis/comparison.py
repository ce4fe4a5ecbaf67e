"""Our sample of a cell against a reference sample: difference of means, Welch 95% interval and t-test."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .aggregates import ok_runs
from .errors import AnalysisError, NotEnoughPointsError
from .records import METRIC
from .reference import Reference, load_reference

__all__ = ["Comparison", "compare", "compare_cell", "compare_train_time"]


@dataclass(frozen=True)
class Comparison:
    """sample − reference, in the samples' own units (fractions for accuracies)."""

    n: int
    mean: float
    std: float  # ddof=1
    reference_n: int
    reference_mean: float
    reference_std: float
    difference: float  # mean − reference_mean
    ci_low: float  # 95% interval of the difference (Welch–Satterthwaite df)
    ci_high: float
    df: float  # Welch–Satterthwaite degrees of freedom
    t: float  # Welch's t statistic
    p_value: float  # two-sided
    reference_name: str = ""

    def summary(self, percent: bool = True) -> str:
        k, unit = (100.0, " pp") if percent else (1.0, "")
        return (f"ours {k * self.mean:.3f} ± {k * self.std:.3f} (n={self.n}) vs reference "
                f"{k * self.reference_mean:.3f} ± {k * self.reference_std:.3f} (n={self.reference_n}): "
                f"difference {k * self.difference:+.3f}{unit}, 95% interval [{k * self.ci_low:+.3f}, "
                f"{k * self.ci_high:+.3f}]{unit}, Welch t={self.t:.2f}, df={self.df:.1f}, p={self.p_value:.3g}")


def compare(sample, reference) -> Comparison:
    """Welch comparison of `sample` (a sequence of values) with `reference` (a Reference or a sequence).

    Both must be in the same units; a Reference's `values` are fractions like our records. Needs ≥2 values
    on each side (a standard deviation from one run does not exist)."""
    name = reference.name if isinstance(reference, Reference) else ""
    ref = np.asarray(reference.values if isinstance(reference, Reference) else reference, dtype=float)
    ours = np.asarray(sample, dtype=float)
    if ours.size < 2:
        raise NotEnoughPointsError("a comparison with the reference", 2, int(ours.size), "runs in our cell",
                                   "run more seeds of this cell; Welch's test needs a standard deviation")
    if ref.size < 2:
        raise NotEnoughPointsError("a comparison with the reference", 2, int(ref.size), "reference values")
    if (ours.max() <= 1.0) != (ref.max() <= 1.0):
        raise AnalysisError(f"the sample (max {ours.max():.4g}) and the reference (max {ref.max():.4g}) look like "
                            "different units (fraction vs percent); convert one of them")
    v1, v2 = ours.var(ddof=1) / ours.size, ref.var(ddof=1) / ref.size
    se = math.sqrt(v1 + v2)
    diff = float(ours.mean() - ref.mean())
    if se > 0:
        df = (v1 + v2) ** 2 / (v1**2 / (ours.size - 1) + v2**2 / (ref.size - 1))
        t = diff / se
        p = float(2 * stats.t.sf(abs(t), df))
        half = float(stats.t.ppf(0.975, df)) * se
    else:  # both samples constant: no spread to test against
        df, t, p, half = float("nan"), float("nan"), float("nan"), float("nan")
    return Comparison(n=int(ours.size), mean=float(ours.mean()), std=float(ours.std(ddof=1)),
                      reference_n=int(ref.size), reference_mean=float(ref.mean()), reference_std=float(ref.std(ddof=1)),
                      difference=diff, ci_low=diff - half, ci_high=diff + half, df=float(df), t=float(t), p_value=p,
                      reference_name=name)


def compare_cell(frame: pd.DataFrame, reference: Reference | None = None, *, width: int | None = None,
                 epochs: int | None = None) -> Comparison:
    """Compare the `ema_val_acc` of our runs at (width, epochs) — default: the reference's cell — with it."""
    reference = reference if reference is not None else load_reference()
    return compare(_cell(frame, reference, width, epochs)[METRIC].to_numpy(dtype=float), reference)


def compare_train_time(frame: pd.DataFrame, reference: Reference, *, width: int | None = None,
                       epochs: int | None = None) -> Comparison | None:
    """The same comparison for training time in seconds, where the reference measured it (the seed's code run
    by us, on the same hardware); None for a reference without times."""
    if not reference.train_times:
        return None
    times = _cell(frame, reference, width, epochs)["train_time_s"].dropna().to_numpy(dtype=float)
    return compare(times, reference.train_times)


def _cell(frame: pd.DataFrame, reference: Reference, width: int | None, epochs: int | None) -> pd.DataFrame:
    width = reference.width if width is None else width
    epochs = reference.epochs if epochs is None else epochs
    runs = ok_runs(frame)
    cell = runs[(runs["width"] == width) & (runs["epochs"] == epochs)]
    if cell.empty:
        cells = sorted({(int(w), int(e)) for w, e in zip(runs["width"], runs["epochs"])})
        raise AnalysisError(f"no ok runs at width={width}, epochs={epochs}; cells present (width, epochs): {cells}")
    return cell
