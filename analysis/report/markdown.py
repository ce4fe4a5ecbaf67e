"""Text formatting for reports and the CLI: markdown tables, percent columns, fit parameter rows."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..fits import NOT_IDENTIFIED, FitResult, FitSkipped

__all__ = ["markdown_table", "format_aggregate", "format_law_params", "format_cv", "fmt", "pct", "plain"]


def fmt(value, digits: int = 4) -> str:
    """A number with `digits` significant digits; '—' for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return str(value)
    return f"{value:.{digits}g}"


def pct(value, decimals: int = 2) -> str:
    """A fraction shown in percent with fixed decimals; '—' for missing."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{100 * float(value):.{decimals}f}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of `frame` (values via str())."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def format_aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """An `aggregate` table for reading: accuracies in percent as mean ± std, its standard error, the 95%
    interval, min–max, mean train_time_s and train_flops."""
    metric = table.attrs.get("metric", "ema_val_acc")
    cells = list(table.attrs.get("cell_columns", ("width", "epochs")))
    out = pd.DataFrame({c: table[c].map(plain) for c in cells})
    out["n"] = table["n"]
    out[f"{metric} (%) mean ± std"] = [f"{pct(m)} ± {pct(s)}" if math.isfinite(s) else f"{pct(m)}"
                                       for m, s in zip(table["mean"], table["std"])]
    out["SE (points)"] = [pct(v) for v in table["sem"]]
    out["95% CI (%)"] = [f"[{pct(lo)}, {pct(hi)}]" if math.isfinite(lo) else "—"
                         for lo, hi in zip(table["ci_low"], table["ci_high"])]
    out["min–max (%)"] = [f"{pct(lo)}–{pct(hi)}" for lo, hi in zip(table["min"], table["max"])]
    out["train_time_s (mean, s)"] = [fmt(v, 4) for v in table["train_time_s"]]
    out["train_flops (mean, FLOPs)"] = [fmt(v, 3) for v in table["train_flops"]]
    return out


def format_law_params(fit: FitResult) -> pd.DataFrame:
    """One row per parameter: estimate, 95% interval, and whether the data identify it (with why not)."""
    rows = []
    for name, value in fit.params.items():
        low, high = fit.intervals[name]
        interval = f"[{fmt(low, 3)}, {fmt(high, 3)}]" if math.isfinite(low) else "—"
        rows.append({"parameter": name, "estimate": fmt(value, 4), "95% interval": interval,
                     "identified": f"**{NOT_IDENTIFIED}**: {fit.flag_reasons[name]}" if name in fit.not_identified
                     else "yes"})
    return pd.DataFrame(rows)


def format_cv(choice) -> pd.DataFrame:
    """One row per law: parameters, fit quality, leave-one-cell-out CV error, and which one was chosen."""
    rows = []
    for name, fit in choice.fits.items():
        if isinstance(fit, FitSkipped):
            rows.append({"law": name, "parameters": "—", "χ²/dof (expected)": "—", "CV RMSE (points)": "—",
                         "not identified": "—", "chosen": f"not fitted: {fit.reason}"})
            continue
        score = choice.scores.get(name)
        cv = "—"
        if score is not None and math.isfinite(score.mse):
            cv = f"{score.rmse:.3g} (MSE {score.mse:.3g} ± {score.mse_se:.2g})" + ("" if score.complete else
                                                                             f"; incomplete: {score.reason}")
        chi = f"{fit.chi2_per_dof:.3g} ({fit.chi2_expected:.2f})" if math.isfinite(fit.chi2_per_dof) else "— (no seed noise)"
        rows.append({"law": name, "parameters": fit.law.n_params, "χ²/dof (expected)": chi, "CV RMSE (points)": cv,
                     "not identified": ", ".join(fit.not_identified) or "none",
                     "chosen": "**yes**" if name == choice.chosen else ""})
    return pd.DataFrame(rows)


def plain(value):
    """A numpy scalar as a Python scalar (so dict keys and tables print cleanly); anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value
