"""Held-out checks: refit a law without some cells, predict them, and score each with
z = (observed − predicted) / √(se_pred² + sem_obs²).

se_pred is the bootstrap SE of the predicted mean; sem_obs the SE of the observed cell mean, SD / √n with the
SD rule of cells.py — so a cell with n = 1 (or 2) uses the study's pooled relative seed SD times its error.
|z| > 2 says the law missed the cell by more than both uncertainties allow. The corner test (the largest width ×
the largest epochs, the cell a scaling law exists to predict) is always run; holding out the whole largest width
and the whole largest epochs value follow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .cells import Cells
from .errors import AnalysisError
from .fits import FitResult, fit_cells
from .predict import predict_acc

__all__ = ["HeldOut", "held_out", "corner_check", "holdout_checks", "z_text", "TABLE_COLUMNS"]

TABLE_COLUMNS = ("width", "epochs", "n", "observed", "sem_obs", "predicted", "se_pred", "ci_low", "ci_high", "z")


@dataclass(frozen=True)
class HeldOut:
    label: str  # "corner", "largest width", "largest epochs"
    law: str
    fit: FitResult | None  # fitted without the held-out cells; None when it could not be
    table: pd.DataFrame  # TABLE_COLUMNS, one row per held-out cell (empty when not computed)
    reason: str = ""  # why not computed

    @property
    def computed(self) -> bool:
        return self.fit is not None

    def summary(self) -> str:
        if not self.computed:
            return f"{self.label}: not computed: {self.reason}"
        zs = self.table["z"].to_numpy(dtype=float)
        worst = np.nanmax(np.abs(zs)) if np.isfinite(zs).any() else float("nan")
        within = int((np.abs(zs) <= 2).sum())
        return (f"{self.label} held out ({len(self.table)} cells): {within} of {len(self.table)} within |z| ≤ 2 "
                f"(largest |z| {worst:.2g})")


def held_out(cells: Cells, law: str, test: np.ndarray, label: str, **options) -> HeldOut:
    """Fit `law` to the cells where `test` is false and predict those where it is true."""
    test = np.asarray(test, dtype=bool)
    if not test.any():
        return HeldOut(label, law, None, _empty(), "no such cells")
    try:
        fit = fit_cells(cells.select(~test), law, **options)
    except AnalysisError as exc:
        return HeldOut(label, law, None, _empty(), str(exc))
    held = cells.select(test)
    point, draws = predict_acc(fit, held.num_params, held.epochs, held.width)
    if np.isnan(point).any():
        return HeldOut(label, law, None, _empty(), f"the {law} law cannot predict these cells (widths it has no "
                                                    "parameters for)")
    se = draws.std(axis=0, ddof=1) if len(draws) > 1 else np.full(len(held), np.nan)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0) if len(draws) else (se, se)
    sem = held.sem_or(fit.seed_rel_sd)
    z = (held.acc - point) / np.sqrt(se**2 + sem**2)
    table = pd.DataFrame({"width": held.width, "epochs": held.epochs, "n": held.n, "observed": held.acc,
                          "sem_obs": sem, "predicted": point, "se_pred": se, "ci_low": low, "ci_high": high, "z": z})
    return HeldOut(label, law, fit, table)


def corner_check(cells: Cells, law: str, **options) -> HeldOut:
    """Hold out the largest width × largest epochs cell (if the study has it)."""
    corner = (cells.width == cells.width.max()) & (cells.epochs == cells.epochs.max())
    label = f"corner (width {cells.width.max():g} × {cells.epochs.max():g} epochs)"
    if not corner.any():
        return HeldOut(label, law, None, _empty(), "the study has no run in that cell yet")
    return held_out(cells, law, corner, label, **options)


def holdout_checks(cells: Cells, law: str, **options) -> list[HeldOut]:
    """The corner, then the largest width, then the largest epochs value held out."""
    checks = [corner_check(cells, law, **options)]
    for column, values in (("width", cells.width), ("epochs", cells.epochs)):
        checks.append(held_out(cells, law, values == values.max(), f"largest {column} ({values.max():g})",
                               **options))
    return checks


def z_text(z: float) -> str:
    return "—" if not math.isfinite(z) else f"{z:+.2f}"


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in TABLE_COLUMNS})
