"""Figures of the data (with a law's curves where given); each function draws on the Axes it is given.

Nothing here touches pyplot: `new_axes` builds a bare `matplotlib.figure.Figure` (rendered by Agg when
saved), so plotting works headless and never leaks global state. Axis labels use the record's column names.
Fitted curves are drawn only over the epochs each width was run at, and the axes are held to the data, so a
law's extrapolation never sets the scale of a figure. Figures of the fits themselves are in fit_figures.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..allocation import Envelope, pareto_frontier
from ..errors import AnalysisError
from ..fits import FitResult
from ..records import METRIC
from ..writer import write_figure

__all__ = ["new_axes", "save_figure", "plot_accuracy_vs_epochs", "plot_error_vs_flops", "plot_accuracy_heatmap",
           "plot_time_frontier", "colours", "ACC_LABEL", "ERROR_LABEL", "FLOPS_LABEL"]

ACC_LABEL = "ema_val_acc (%)"
ERROR_LABEL = "1 − ema_val_acc (error, fraction)"
FLOPS_LABEL = "train_flops (FLOPs)"


def new_axes(width: float = 6.4, height: float = 4.4) -> tuple[Figure, Axes]:
    """A fresh Figure (no pyplot) and its single Axes."""
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def save_figure(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write the figure as PNG, atomically (writer.py)."""
    return write_figure(figure, path, dpi)


def plot_accuracy_vs_epochs(ax: Axes, table: pd.DataFrame, runs: pd.DataFrame | None = None,
                            fit: FitResult | None = None) -> Axes:
    """Mean ema_val_acc vs epochs per width with ±1 standard-error bars (cells with n ≥ 2), every run as a
    small point (`runs`), and `fit`'s curve per width over that width's epochs."""
    _need(table, ("width", "epochs", "mean", "sem"), "plot_accuracy_vs_epochs")
    palette = colours(table["width"])
    values = [100 * table["mean"].to_numpy(dtype=float)]
    for k, (width, cell) in enumerate(table.groupby("width")):
        cell = cell.sort_values("epochs")
        mean = 100 * cell["mean"].to_numpy(dtype=float)
        sem = np.nan_to_num(100 * cell["sem"].to_numpy(dtype=float))
        shift = 1.0 + 0.015 * (k - (len(palette) - 1) / 2)  # widths side by side, so bars do not overlap
        ax.errorbar(cell["epochs"] * shift, mean, yerr=sem, marker="o", ms=4, capsize=3, lw=1, color=palette[width],
                    label=f"width={width:g}", zorder=3)
        if runs is not None and len(runs):
            these = runs[runs["width"] == width]
            ax.scatter(these["epochs"] * shift * 1.012, 100 * these[METRIC], s=12, marker="_", color=palette[width],
                       zorder=2)
            values.append(100 * these[METRIC].to_numpy(dtype=float))
        if fit is not None and fit.law.predicts_width(width):
            grid = np.geomspace(cell["epochs"].min(), cell["epochs"].max(), 60)
            size = cell["num_params"].iloc[0] if "num_params" in cell else np.nan
            curve = 1.0 - fit.predict_error(size, grid, width)[0]
            if np.isfinite(curve).all():
                ax.plot(grid, 100 * curve, "--", color=palette[width], alpha=0.8, lw=1.2)
    _hold_to(ax, np.concatenate(values), "y")
    ax.set_xscale("log", base=2)
    epochs = sorted(pd.unique(table["epochs"]))
    ax.set_xticks(epochs, [f"{e:g}" for e in epochs])
    ax.minorticks_off()
    ax.set_xlabel("epochs")
    ax.set_ylabel(ACC_LABEL)
    ax.set_title("ema_val_acc vs epochs: cell means ±1 SE, dashes beside them = runs"
                 + (f"\ndashed: the {fit.name} law" if fit is not None else ""), fontsize="medium")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_error_vs_flops(ax: Axes, table: pd.DataFrame, fit: FitResult | None = None,
                        envelope: Envelope | None = None) -> Axes:
    """Cell-mean error vs train_flops (log-log) per width with ±1 SE bars; `fit`'s curve per width; the data's
    Pareto frontier; and `envelope`, the law's best error per budget (dotted where extrapolated)."""
    _need(table, ("width", "epochs", "train_flops", "mean", "sem"), "plot_error_vs_flops")
    palette = colours(table["width"])
    for width, cell in table.groupby("width"):
        cell = cell.sort_values("epochs")
        ax.errorbar(cell["train_flops"], 1 - cell["mean"], yerr=np.nan_to_num(cell["sem"].to_numpy(dtype=float)),
                    fmt="o", ms=4, capsize=2, color=palette[width], label=f"width={width:g}", zorder=3)
        if fit is not None and fit.law.predicts_width(width):
            grid = np.geomspace(cell["epochs"].min(), cell["epochs"].max(), 40)
            per_epoch = float(cell["train_flops"].iloc[0] / cell["epochs"].iloc[0])
            size = cell["num_params"].iloc[0] if "num_params" in cell else np.nan
            curve = fit.predict_error(size, grid, width)[0]
            ax.plot(grid * per_epoch, curve, "--", color=palette[width], alpha=0.7, lw=1)
    front = pareto_frontier(table)
    ax.step(front["train_flops"], 1 - front["mean"], where="post", color="grey", lw=1, label="data frontier")
    errors = (1 - table["mean"]).to_numpy(dtype=float)
    if envelope is not None and len(envelope.table):
        t = envelope.table
        inside = ~t["extrapolated"].to_numpy()
        rests = fit is not None and bool(fit.not_identified)
        label = f"{envelope.law} law: best width" + (" (rests on parameters not identified)" if rests else "")
        ax.plot(t["budget"][inside], 1 - t["acc"][inside], "k-", lw=2, label=label)
        ax.plot(t["budget"], 1 - t["acc"], "k:", lw=1.5, label="… extrapolated")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _hold_to(ax, errors, "y", log=True)
    ax.set_xlabel(FLOPS_LABEL)
    ax.set_ylabel(ERROR_LABEL)
    ax.set_title("error vs training compute per width\ndashed: law per width; black: its efficient envelope",
                 fontsize="medium")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3, which="both")
    return ax


def plot_time_frontier(ax: Axes, table: pd.DataFrame, envelope: Envelope | None = None,
                       fit: FitResult | None = None) -> Axes:
    """Cell-mean error vs measured train_time_s per width, the data's frontier in time, and (dotted) the law's
    best observed width per time budget, which says so when `fit` has parameters not identified."""
    _need(table, ("width", "train_time_s", "mean"), "plot_time_frontier")
    palette = colours(table["width"])
    for width, cell in table.groupby("width"):
        ax.scatter(cell["train_time_s"], 1 - cell["mean"], color=palette[width], label=f"width={width:g}", zorder=3)
    front = pareto_frontier(table, cost="train_time_s")
    ax.step(front["train_time_s"], 1 - front["mean"], where="post", color="grey", lw=1, label="data frontier")
    if envelope is not None and len(envelope.table):
        t = envelope.table
        rests = " (rests on parameters not identified)" if fit is not None and fit.not_identified else ""
        ax.plot(t["budget"], 1 - t["acc"], "k:", lw=1.5, label=f"{envelope.law} law: best observed width{rests}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _hold_to(ax, (1 - table["mean"]).to_numpy(dtype=float), "y", log=True)
    ax.set_xlabel("train_time_s (s, as measured)")
    ax.set_ylabel(ERROR_LABEL)
    ax.set_title("error vs measured training time", fontsize="medium")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3, which="both")
    return ax


def plot_accuracy_heatmap(ax: Axes, table: pd.DataFrame) -> Axes:
    """Mean ema_val_acc (%) per width × epochs cell, with the number of runs n written in each cell."""
    _need(table, ("width", "epochs", "mean", "n"), "plot_accuracy_heatmap")
    means = table.pivot_table(index="width", columns="epochs", values="mean", aggfunc="mean") * 100
    counts = table.pivot_table(index="width", columns="epochs", values="n", aggfunc="sum")
    image = ax.imshow(means.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    for i in range(means.shape[0]):
        for j in range(means.shape[1]):
            value = means.iat[i, j]
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}\nn={int(counts.iat[i, j])}", ha="center", va="center", fontsize="small",
                        color="white" if value < np.nanmean(means.to_numpy()) else "black")
    ax.set_xticks(range(means.shape[1]), [f"{c:g}" for c in means.columns])
    ax.set_yticks(range(means.shape[0]), [f"{r:g}" for r in means.index])
    ax.set_xlabel("epochs")
    ax.set_ylabel("width")
    ax.set_title("mean ema_val_acc (%) per cell, n = runs")
    ax.figure.colorbar(image, ax=ax, label=ACC_LABEL)
    return ax


def colours(widths) -> dict:
    values = sorted(pd.unique(pd.Series(widths)))
    cmap = colormaps["viridis"]
    return {w: cmap(0.85 * i / max(1, len(values) - 1)) for i, w in enumerate(values)}


def _hold_to(ax: Axes, values: np.ndarray, axis: str, log: bool = False) -> None:
    """Limit the axis to the data's range plus a margin (a tenth of it; a factor of 1.15 on log axes)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if not len(values):
        return
    lo, hi = values.min(), values.max()
    if log:
        lo, hi = lo / 1.15, hi * 1.15
    else:
        pad = 0.1 * (hi - lo) or 0.5
        lo, hi = lo - pad, hi + pad
    (ax.set_ylim if axis == "y" else ax.set_xlim)(lo, hi)


def _need(table: pd.DataFrame, columns: tuple, where: str) -> None:
    missing = [c for c in columns if c not in table]
    if missing:
        raise AnalysisError(f"{where} needs an aggregate() table with columns {list(columns)}; missing {missing}")
    if table.empty:
        raise AnalysisError(f"{where} got an empty table; nothing to plot")
