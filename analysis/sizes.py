"""Model size and compute at any width: from the records of that width, else a quadratic in width.

For this network every conv maps w-proportional channels to w-proportional channels, so the parameter count
and the forward FLOPs per image are exact quadratics in width (a·w² + b·w + c) wherever the squeeze-excite
hidden size (channels // se_ratio) and the stage widths (round(2^k·w)) divide evenly: every width that is a
multiple of 8 at the recipe's se_ratio of 16. Three widths fix the quadratic; more are checked against it.
(Widths 8, 16 and 32 give 6,570,488 parameters and 537,908,256 forward FLOPs at width 64: the records in
results/cpu-headline; the tests check it.) Training FLOPs per epoch are 3 × forward × the images trained per
epoch (whole batches), a constant for one data set, so they are a quadratic in width too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .aggregates import ok_runs
from .errors import AnalysisError

__all__ = ["WidthSizes", "width_sizes", "SIZE_COLUMNS"]

SIZE_COLUMNS = ("num_params", "flops_per_epoch", "forward_flops_per_image")
_EXACT = 1e-6  # relative misfit of the quadratic at an observed width beyond which it is reported as inexact


@dataclass(frozen=True)
class WidthSizes:
    """{column: {width: value}} as recorded, plus a quadratic per column fitted to them."""

    recorded: dict  # column → {width: value}
    coefficients: dict  # column → (a, b, c) of a·w² + b·w + c, or None with fewer than 3 widths
    misfit: dict = field(default_factory=dict)  # column → largest relative misfit at a recorded width

    def value(self, column: str, width: float) -> tuple[float, str]:
        """(value, source) at `width`; source is "records" or "quadratic in width (…)"."""
        recorded = self.recorded.get(column, {})
        if float(width) in recorded:
            return recorded[float(width)], "records"
        coef = self.coefficients.get(column)
        if coef is None:
            have = ", ".join(f"{w:g}" for w in sorted(recorded)) or "none"
            raise AnalysisError(f"{column} at width {width:g}: no records of that width and too few widths for the "
                                f"quadratic (need 3, have {have}); add records of width {width:g}")
        exact = "exact for multiples of 8" if width % 8 == 0 else "approximate: not a multiple of 8"
        return float(np.polyval(coef, width)), f"quadratic in width fitted to widths {self._widths(column)} ({exact})"

    def values(self, column: str, widths) -> np.ndarray:
        return np.array([self.value(column, w)[0] for w in np.atleast_1d(widths)])

    def _widths(self, column: str) -> str:
        return ", ".join(f"{w:g}" for w in sorted(self.recorded.get(column, {})))


def width_sizes(frame: pd.DataFrame) -> WidthSizes:
    """Per-width num_params, flops_per_epoch and forward_flops_per_image of the ok runs, and their quadratics."""
    runs = ok_runs(frame)
    recorded, coefficients, misfit = {}, {}, {}
    for column in SIZE_COLUMNS:
        if column not in runs:
            continue
        values = pd.to_numeric(runs[column], errors="coerce")
        per_width = values.groupby(runs["width"].astype(float)).median().dropna()
        recorded[column] = {float(w): float(v) for w, v in per_width.items()}
        if len(per_width) >= 3:
            w = per_width.index.to_numpy(dtype=float)
            coef = np.polyfit(w, per_width.to_numpy(dtype=float), 2)
            coefficients[column] = tuple(float(c) for c in coef)
            misfit[column] = float(np.max(np.abs(np.polyval(coef, w) / per_width.to_numpy() - 1.0)))
        else:
            coefficients[column] = None
    return WidthSizes(recorded, coefficients, misfit)
