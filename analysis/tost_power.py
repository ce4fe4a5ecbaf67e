"""How many runs would decide an undecided equivalence: the smallest number of runs at which TOST at ±margin
(analysis.comparison) shows equivalence with 80% power, by simulation.

Two designs:
- both sides grow (two folders of our own records, bf16 against fp32): n runs a side;
- the reference is fixed (a published sample, e.g. 7 runs): n runs of ours against it as it is.

Each draw takes normal samples with each side's SD as seen and a true difference `offset`, and applies Welch's
TOST exactly as `compare` does; the power is the share of draws that show equivalence (unconditional: the
reference's own sample is redrawn too). The SDs come from the samples at hand, so with three runs a side the
answer is a rough guide, not a promise: the report says "about". Two offsets are worth asking: the difference
as seen, and 0. Where the offset is at or beyond the margin, no number of runs shows equivalence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.welch import ALPHA

from .comparison import Comparison

__all__ = ["POWER", "MAX_RUNS", "tost_power", "runs_for_equivalence", "RunsNeeded", "runs_needed"]

POWER = 0.8
MAX_RUNS = 200  # a search bound: beyond it the answer is "more than 200"
_DRAWS = 4000  # the power's simulation SE is at most 0.8% at 80%


def tost_power(n: int, sd: float, reference_n: int, reference_sd: float, offset: float, margin: float, *,
               draws: int = _DRAWS, seed: int = 0) -> float:
    """The share of `draws` simulated pairs of samples (n values of SD `sd`, reference_n of SD `reference_sd`,
    true difference `offset`) in which TOST at ±`margin` shows equivalence at level ALPHA."""
    from scipy import stats

    if n < 2 or reference_n < 2:
        raise ValueError(f"TOST needs 2 or more values a side (have {n} and {reference_n})")
    if sd <= 0 and reference_sd <= 0:  # no spread: the difference is the offset itself
        return float(abs(offset) < margin)
    rng = np.random.default_rng(seed)
    ours = offset + sd * rng.standard_normal((draws, n))
    theirs = reference_sd * rng.standard_normal((draws, reference_n))
    va, vb = ours.var(axis=1, ddof=1) / n, theirs.var(axis=1, ddof=1) / reference_n
    se2 = va + vb
    df = se2 ** 2 / (va ** 2 / (n - 1) + vb ** 2 / (reference_n - 1))
    half = stats.t.ppf(1 - ALPHA, df) * np.sqrt(se2)  # TOST at ALPHA: the (1 − 2·ALPHA) interval inside ±margin
    diff = ours.mean(axis=1) - theirs.mean(axis=1)
    return float(np.mean((diff - half > -margin) & (diff + half < margin)))


def runs_for_equivalence(c: Comparison, offset: float, *, reference_fixed: bool = False, power: float = POWER,
                         max_runs: int = MAX_RUNS) -> int | None:
    """The smallest n (runs a side, or runs of ours when `reference_fixed`) whose simulated TOST power reaches
    `power` at a true difference `offset`, with the SDs of `c`'s samples; None where it is not reached by
    `max_runs` (always, when |offset| ≥ the margin). `c` needs a margin."""
    if c.margin is None:
        raise ValueError("runs_for_equivalence needs a Comparison with an equivalence margin")
    if abs(offset) >= c.margin:
        return None

    def power_at(n: int) -> float:
        return tost_power(n, c.std, c.reference_n if reference_fixed else n, c.reference_std, offset, c.margin)

    low, high = 1, 2  # double high until it reaches the power (low stays below it), then halve the gap
    while power_at(high) < power:
        if high == max_runs:
            return None
        low, high = high, min(2 * high, max_runs)
    while high - low > 1:
        mid = (low + high) // 2
        if power_at(mid) >= power:
            high = mid
        else:
            low = mid
    return high


@dataclass(frozen=True)
class RunsNeeded:
    """Runs that would decide an undecided comparison with 80% power: at the difference seen, and at 0 (None: not
    within MAX_RUNS, or never where the difference is at or beyond the margin)."""

    as_seen: int | None
    at_zero: int | None
    offset: float  # the difference seen
    margin: float
    reference_fixed: bool

    @property
    def design(self) -> str:
        """Whose runs the counts are: 'a side', or 'records only' where the other side is fixed."""
        return "records only" if self.reference_fixed else "a side"

    def counts(self) -> tuple[str, str]:
        """('about 19', 'about 7'), or 'none would do' / 'more than 200' where there is no number."""
        return tuple(f"about {n}" if n is not None else "none would do" if abs(offset) >= self.margin
                     else f"more than {MAX_RUNS}" for n, offset in ((self.as_seen, self.offset), (self.at_zero, 0.0)))

    def text(self, ours: str = "ours", theirs: str = "the reference") -> str:
        """One clause, in points: how many runs would show equivalence with 80% power, if the difference is as
        seen and if it is 0; `ours` and `theirs` name the two sides where the reference is fixed."""
        unit = f"runs of {ours} against {theirs} as it is" if self.reference_fixed else "runs a side"
        seen, zero = self.counts()
        return (f"{unit} to show equivalence with {POWER:.0%} power: {seen} if the true difference is the "
                f"{100 * self.offset:+.2f} points seen, {zero} if it is 0 (simulated TOST with each side's SD as seen)")


def runs_needed(c: Comparison, *, reference_fixed: bool = False) -> RunsNeeded | None:
    """For an undecided comparison, the runs that would decide it (None for any other outcome: it is decided)."""
    if c.outcome != "undecided":
        return None
    return RunsNeeded(runs_for_equivalence(c, c.difference, reference_fixed=reference_fixed),
                      runs_for_equivalence(c, 0.0, reference_fixed=reference_fixed), c.difference, c.margin,
                      reference_fixed)
