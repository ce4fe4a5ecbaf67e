"""Per-grid-cell statistics of the headline metric: n, mean, std, sem, Student-t 95% interval, min, max."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .errors import AnalysisError, NoRecordsError
from .records import EXECUTION_FIELDS, METRIC

__all__ = ["aggregate", "cell_columns", "ok_runs", "STAT_COLUMNS"]

# Columns `aggregate` adds after the cell columns; n .. max describe `metric` (frame.attrs["metric"]).
STAT_COLUMNS = ("n", "mean", "std", "sem", "ci_low", "ci_high", "min", "max", "train_time_s", "train_flops")
_NOT_KNOBS = EXECUTION_FIELDS | {"seed"}  # never split cells: seeds are the replicates, the rest can't matter
_RESOLVED = ("precision",)  # asked for in the config (possibly "auto"), resolved at run time: the run's own value counts


def ok_runs(frame: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """The rows of `frame` with status 'ok' and a finite `metric`; raises NoRecordsError if there are none."""
    if metric not in frame.columns:
        raise NoRecordsError(f"no `{metric}` column in the frame (columns: {', '.join(map(str, frame.columns))}); "
                             "load records with analysis.load(dir).frame")
    keep = np.isfinite(pd.to_numeric(frame[metric], errors="coerce"))
    if "status" in frame.columns:
        keep &= frame["status"] == "ok"
    runs = frame[keep]
    if runs.empty:
        raise NoRecordsError(f"no ok runs with a `{metric}` value among {len(frame)} rows")
    return runs


def cell_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that define a grid cell: width, epochs, and every other config column that varies across
    the records, except seed and execution-only fields (device, data_dir, compile, threads, ...). Precision counts
    as the run resolved it (the top-level `precision`), not as asked: "auto" that ran in fp32 is fp32."""
    columns = [c for c in ("width", "epochs") if c in frame.columns]
    names = [n for n in frame.attrs.get("config_columns", ()) if n.removeprefix("config.") not in _RESOLVED]
    for name in names + [n for n in _RESOLVED if n in frame.columns]:
        base = name.removeprefix("config.")
        if name in columns or base in _NOT_KNOBS or name not in frame.columns:
            continue
        if frame[name].astype(str).nunique(dropna=False) > 1:
            columns.append(name)
    return columns


def aggregate(frame: pd.DataFrame, by: list[str] | None = None, *, metric: str = METRIC) -> pd.DataFrame:
    """One row per grid cell with the statistics of `metric` over its runs (seeds).

    `by` defaults to `cell_columns(frame)`. Columns: the cell columns, then `n`, `mean`, `std` (ddof=1),
    `sem`, `ci_low`/`ci_high` (95% Student-t interval of the mean), `min`, `max` — all of `metric`, in its
    own units (fractions for accuracies) — and the cell means of `train_time_s` (s) and `train_flops` (FLOPs),
    plus `num_params` when present. A cell with one run has NaN std, sem and interval: nothing is invented.
    """
    runs = ok_runs(frame, metric)
    by = list(by) if by is not None else cell_columns(runs)
    missing = [c for c in by if c not in runs.columns]
    if missing:
        raise AnalysisError(f"cannot group by {missing}: no such column; available: {', '.join(map(str, runs.columns))}")
    rows = []
    groups = runs.groupby(by, dropna=False, sort=True) if by else [((), runs)]
    for key, cell in groups:
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **_cell_stats(cell, metric)})
    table = pd.DataFrame(rows, columns=[*by, *STAT_COLUMNS, *(["num_params"] if "num_params" in runs else [])])
    table.attrs = {"metric": metric, "cell_columns": tuple(by)}
    return table


def _cell_stats(cell: pd.DataFrame, metric: str) -> dict:
    values = cell[metric].to_numpy(dtype=float)
    n = len(values)
    mean = float(values.mean())
    if n >= 2:
        std = float(values.std(ddof=1))
        sem = std / np.sqrt(n)
        half = float(stats.t.ppf(0.975, n - 1)) * sem
    else:
        std = sem = half = float("nan")
    out = {"n": n, "mean": mean, "std": std, "sem": sem, "ci_low": mean - half, "ci_high": mean + half,
           "min": float(values.min()), "max": float(values.max()),
           "train_time_s": _mean(cell, "train_time_s"), "train_flops": _mean(cell, "train_flops")}
    if "num_params" in cell:
        out["num_params"] = _mean(cell, "num_params")
    return out


def _mean(cell: pd.DataFrame, column: str) -> float:
    if column not in cell:
        return float("nan")
    values = pd.to_numeric(cell[column], errors="coerce").to_numpy(dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
