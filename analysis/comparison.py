"""Our sample of a cell against a reference sample: difference of means, Welch's 95% interval and t-test, and
an equivalence test (TOST, two one-sided Welch tests) with a stated margin.

A non-significant Welch test only says a difference was not detected; "reproduced" needs the opposite claim,
that any difference is smaller than a margin that matters. TOST makes that claim at the 5% level exactly when
the 90% Welch interval of the difference lies inside ±margin (Schuirmann 1987). The default margin is 0.2
accuracy points, about 1.5 seed SDs of the published width-128 × 80-epoch runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.welch import ALPHA, EQUIVALENCE_MARGIN, tost_p, welch, welch_interval, welch_p

from .aggregates import ok_runs
from .errors import AnalysisError, NotEnoughPointsError
from .records import METRIC
from .reference import Reference, load_reference

__all__ = ["Comparison", "compare", "compare_cell", "compare_cells", "compare_train_time", "cell_runs",
           "EQUIVALENCE_MARGIN"]



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
    margin: float | None = None  # equivalence margin, in the samples' units (None: no TOST)
    tost_p: float = float("nan")  # the larger of the two one-sided p-values
    equivalent: bool = False  # TOST rejects |difference| ≥ margin at the 5% level

    @property
    def outcome(self) -> str:
        """What the tests decided: "equivalent" (TOST), "different" (Welch), "undecided", or "" without a margin."""
        if self.margin is None:
            return ""
        if self.equivalent:
            return "equivalent"
        return "different" if self.p_value < ALPHA else "undecided"

    @property
    def verdict(self) -> str:
        """'reproduced' only where equivalence holds; otherwise what can be said."""
        return self._words("reproduced: ", "not reproduced", "not shown to reproduce", "but")

    @property
    def equivalence_verdict(self) -> str:
        """The same decision in the words of two of our own samples (bf16 against fp32), not of a reproduction."""
        return self._words("", "not equivalent", "undecided", "and")

    def _words(self, equivalent: str, different: str, undecided: str, joint: str) -> str:
        m = 100 * self.margin if self.margin is not None else 0.0
        return {"": "",
                "equivalent": f"{equivalent}equivalent within ±{m:.2g} points (TOST p = {self.tost_p:.2g})",
                "different": f"{different}: the difference is significant (Welch p = {self.p_value:.2g})",
                "undecided": (f"{undecided}: no significant difference (Welch p = {self.p_value:.2g}), {joint} "
                              f"equivalence within ±{m:.2g} points is not shown either (TOST p = {self.tost_p:.2g}); "
                              "more runs needed")}[self.outcome]

    def summary(self, percent: bool = True) -> str:
        k, unit = (100.0, " pp") if percent else (1.0, "")
        return (f"ours {k * self.mean:.3f} ± {k * self.std:.3f} (n={self.n}) vs reference "
                f"{k * self.reference_mean:.3f} ± {k * self.reference_std:.3f} (n={self.reference_n}): "
                f"difference {k * self.difference:+.3f}{unit}, 95% interval [{k * self.ci_low:+.3f}, "
                f"{k * self.ci_high:+.3f}]{unit}, Welch t={self.t:.2f}, df={self.df:.1f}, p={self.p_value:.3g}"
                + (f"; {self.verdict}" if self.margin is not None else ""))


def compare(sample, reference, margin: float | None = None) -> Comparison:
    """Welch comparison of `sample` (a sequence of values) with `reference` (a Reference or a sequence), plus
    TOST against ±`margin` when one is given (same units as the samples).

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
    if margin is not None and not margin > 0:
        raise AnalysisError(f"equivalence margin {margin!r}: expected a positive number (0.002 = 0.2 points)")
    diff = float(ours.mean() - ref.mean())
    parts = welch(ours, ref)  # common.welch: the one Welch and TOST of the project
    if parts is not None:
        t, p, df = parts.t, welch_p(parts), parts.df
        low, high = welch_interval(parts, 1 - ALPHA)
    else:  # both samples constant: no spread to test against
        t = p = df = low = high = float("nan")
    equivalence_p = tost_p(parts, margin) if margin is not None and parts is not None else float("nan")
    return Comparison(n=int(ours.size), mean=float(ours.mean()), std=float(ours.std(ddof=1)),
                      reference_n=int(ref.size), reference_mean=float(ref.mean()), reference_std=float(ref.std(ddof=1)),
                      difference=diff, ci_low=low, ci_high=high, df=df, t=t, p_value=p,
                      reference_name=name, margin=margin, tost_p=equivalence_p, equivalent=bool(equivalence_p < ALPHA))


def compare_cell(frame: pd.DataFrame, reference: Reference | None = None, *, width: int | None = None,
                 epochs: int | None = None, margin: float = EQUIVALENCE_MARGIN,
                 precision: str | None = None) -> Comparison:
    """Compare the `ema_val_acc` of our runs at (width, epochs) — default: the reference's cell — with it,
    Welch and TOST at ±`margin` (a fraction: 0.002 = 0.2 points). `precision` keeps the runs that ran in it."""
    reference = reference if reference is not None else load_reference()
    runs = _cell(frame, reference, width, epochs, precision)
    return compare(runs[METRIC].to_numpy(dtype=float), reference, margin)


def compare_cells(frame: pd.DataFrame, other: pd.DataFrame, *, width: int, epochs: int,
                  margin: float = EQUIVALENCE_MARGIN, precision: str | None = None,
                  other_precision: str | None = None) -> Comparison:
    """The `ema_val_acc` of one cell in two folders of our own records, e.g. bf16 runs against fp32 runs of the
    same recipe: Welch and TOST at ±`margin` (a fraction), `frame` − `other`. `precision` and `other_precision`
    keep, on each side, the runs that ran in that precision."""
    ours, theirs = (cell_runs(f, width, epochs, p)[METRIC].to_numpy(dtype=float)
                    for f, p in ((frame, precision), (other, other_precision)))
    return compare(ours, theirs, margin)


def compare_train_time(frame: pd.DataFrame, reference: Reference, *, width: int | None = None,
                       epochs: int | None = None) -> Comparison | None:
    """The same comparison for training time in seconds, where the reference measured it (the seed's code run
    by us, on the same hardware); None for a reference without times."""
    if not reference.train_times:
        return None
    times = _cell(frame, reference, width, epochs)["train_time_s"].dropna().to_numpy(dtype=float)
    return compare(times, reference.train_times)


def _cell(frame: pd.DataFrame, reference: Reference, width: int | None, epochs: int | None,
          precision: str | None = None) -> pd.DataFrame:
    width = reference.width if width is None else width
    epochs = reference.epochs if epochs is None else epochs
    return cell_runs(frame, width, epochs, precision)


def cell_runs(frame: pd.DataFrame, width: int, epochs: int, precision: str | None = None) -> pd.DataFrame:
    """The ok runs of one cell: one sample, so one precision. A cell that mixes precisions is refused, since bf16
    and fp32 runs of one recipe need not train alike; `precision` picks one."""
    runs = ok_runs(frame)
    cell = runs[(runs["width"] == width) & (runs["epochs"] == epochs)]
    if cell.empty:
        cells = sorted({(int(w), int(e)) for w, e in zip(runs["width"], runs["epochs"])})
        raise AnalysisError(f"no ok runs at width={width}, epochs={epochs}; cells present (width, epochs): {cells}")
    ran_in = cell["precision"].fillna("unknown").astype(str) if "precision" in cell else None
    if precision is not None:
        if ran_in is None or not (ran_in == precision).any():
            present = sorted(set(ran_in)) if ran_in is not None else ["not recorded"]
            raise AnalysisError(f"no ok runs in {precision} at width={width}, epochs={epochs}; precisions there: "
                                f"{', '.join(present)}")
        return cell[ran_in == precision]
    if ran_in is not None and ran_in.nunique() > 1:
        counts = ", ".join(f"{p} ×{n}" for p, n in sorted(ran_in.value_counts().items()))
        raise AnalysisError(f"the ok runs at width={width}, epochs={epochs} ran in more than one precision ({counts}); "
                            "one sample needs one: pick it (compare's --precision or --against-precision; "
                            "precision or against_precision in checks.toml's [[equivalence]])")
    return cell
