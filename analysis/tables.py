"""Text formatting for reports and the CLI: markdown tables, percent columns, fit parameter rows."""
from __future__ import annotations

import math

import pandas as pd

from .fits import FitSkipped

__all__ = ["markdown_table", "format_aggregate", "format_fit_params", "fmt", "pct"]


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
    """An `aggregate` table for reading: accuracies in percent as mean ± std, the 95% interval, min–max,
    mean train_time_s and train_flops."""
    metric = table.attrs.get("metric", "ema_val_acc")
    cells = list(table.attrs.get("cell_columns", ("width", "epochs")))
    out = pd.DataFrame({c: table[c].map(_plain) for c in cells})
    out["n"] = table["n"]
    out[f"{metric} (%) mean ± std"] = [f"{pct(m)} ± {pct(s)}" if math.isfinite(s) else f"{pct(m)}"
                                       for m, s in zip(table["mean"], table["std"])]
    out["95% CI (%)"] = [f"[{pct(lo)}, {pct(hi)}]" if math.isfinite(lo) else "—"
                         for lo, hi in zip(table["ci_low"], table["ci_high"])]
    out["min–max (%)"] = [f"{pct(lo)}–{pct(hi)}" for lo, hi in zip(table["min"], table["max"])]
    out["train_time_s (mean, s)"] = [fmt(v, 4) for v in table["train_time_s"]]
    out["train_flops (mean, FLOPs)"] = [fmt(v, 3) for v in table["train_flops"]]
    return out


def format_fit_params(fits: list) -> pd.DataFrame:
    """One row per fit (FitResult or FitSkipped): where it applies, each parameter as 'value [low, high]'."""
    rows = []
    for fit in fits:
        where = ", ".join(f"{k}={v}" for k, v in fit.subset.items()) or "all runs"
        if isinstance(fit, FitSkipped):
            rows.append({"fit": f"{fit.law} ({where})", "parameters (95% interval)": f"not fitted: {fit.reason}",
                         "runs / cells": "", "bootstrap draws": "", "residual RMSE (error)": "", "note": ""})
            continue
        params = "; ".join(f"{name} = {fmt(value)} [{fmt(fit.intervals[name][0], 3)}, {fmt(fit.intervals[name][1], 3)}]"
                           for name, value in fit.params.items())
        rows.append({"fit": f"{fit.law} ({where})", "parameters (95% interval)": params,
                     "runs / cells": f"{fit.n_points} / {fit.n_cells}", "bootstrap draws": fit.n_boot,
                     "residual RMSE (error)": fmt(fit.residual_rmse, 3), "note": fit.note})
    return pd.DataFrame(rows)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
