"""One function per figure; each draws on the matplotlib Axes it is given and returns it.

Nothing here touches pyplot: `new_axes` builds a bare `matplotlib.figure.Figure` (rendered by Agg when
saved), so plotting works headless and never leaks global state. Axis labels use the record's column names.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .errors import AnalysisError
from .fits import FitResult
from .frontier import pareto_frontier
from .predict import predict

__all__ = ["new_axes", "save_figure", "plot_accuracy_vs_epochs", "plot_error_vs_flops", "plot_accuracy_heatmap",
           "plot_frontier"]

ACC_LABEL = "ema_val_acc (%)"
ERROR_LABEL = "1 − ema_val_acc (error, fraction)"
FLOPS_LABEL = "train_flops (FLOPs)"


def new_axes(width: float = 6.4, height: float = 4.4) -> tuple[Figure, Axes]:
    """A fresh Figure (no pyplot) and its single Axes."""
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def save_figure(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def plot_accuracy_vs_epochs(ax: Axes, table: pd.DataFrame, fits: dict | None = None) -> Axes:
    """Mean ema_val_acc vs epochs, one line per width, with 95% interval bars (cells with n ≥ 2); `fits`
    ({width: FitResult} of the epochs law) adds each width's fitted curve, dashed."""
    _need(table, ("width", "epochs", "mean", "ci_low", "ci_high"), "plot_accuracy_vs_epochs")
    colours = _colours(table["width"])
    for width, cell in table.groupby("width"):
        cell = cell.sort_values("epochs")
        mean = 100 * cell["mean"].to_numpy()
        below = np.nan_to_num(mean - 100 * cell["ci_low"].to_numpy())
        above = np.nan_to_num(100 * cell["ci_high"].to_numpy() - mean)
        ax.errorbar(cell["epochs"], mean, yerr=[below, above], marker="o", capsize=3, color=colours[width],
                    label=f"width={width}")
        fit = (fits or {}).get(width)
        if isinstance(fit, FitResult):
            grid = np.geomspace(cell["epochs"].min(), cell["epochs"].max(), 60)
            ax.plot(grid, 100 * predict(fit, epochs=grid).ema_val_acc, "--", color=colours[width], alpha=0.7)
    ax.set_xscale("log", base=2)
    epochs = sorted(pd.unique(table["epochs"]))
    ax.set_xticks(epochs, [f"{e:g}" for e in epochs])
    ax.minorticks_off()
    ax.set_xlabel("epochs")
    ax.set_ylabel(ACC_LABEL)
    ax.set_title("ema_val_acc vs epochs\nbars: 95% interval of the mean" + ("; dashed: fitted epochs law" if fits else ""),
                 fontsize="medium")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_error_vs_flops(ax: Axes, table: pd.DataFrame, fit: FitResult | None = None) -> Axes:
    """Cell-mean error vs train_flops on log-log axes, coloured by width, with the fitted compute law and its
    95% band when `fit` is given."""
    _need(table, ("width", "train_flops", "mean"), "plot_error_vs_flops")
    colours = _colours(table["width"])
    for width, cell in table.groupby("width"):
        ax.scatter(cell["train_flops"], 1 - cell["mean"], color=colours[width], label=f"width={width}", zorder=3)
    if fit is not None:
        flops = table["train_flops"].to_numpy(dtype=float)
        grid = np.geomspace(np.nanmin(flops), np.nanmax(flops), 80)
        pred = predict(fit, train_flops=grid)
        ax.plot(grid, pred.error, "k-", label=f"fit: α={fit.params['alpha']:.3g}, e_inf={fit.params['e_inf']:.3g}")
        if np.isfinite(pred.error_low).all():
            ax.fill_between(grid, pred.error_low, pred.error_high, color="k", alpha=0.15, label="95% interval")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(FLOPS_LABEL)
    ax.set_ylabel(ERROR_LABEL)
    ax.set_title("error vs training compute" + (f" ({fit.formula.replace('error = ', 'fit: ')})" if fit else ""),
                 fontsize="medium")
    ax.legend(fontsize="small")
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
    ax.set_xticks(range(means.shape[1]), [str(c) for c in means.columns])
    ax.set_yticks(range(means.shape[0]), [str(r) for r in means.index])
    ax.set_xlabel("epochs")
    ax.set_ylabel("width")
    ax.set_title("mean ema_val_acc (%) per cell, n = runs")
    ax.figure.colorbar(image, ax=ax, label=ACC_LABEL)
    return ax


def plot_frontier(ax: Axes, table: pd.DataFrame, law: pd.DataFrame | None = None) -> Axes:
    """The compute-optimal frontier: every cell's error vs train_flops, the data's Pareto frontier (cells no
    cheaper cell beats, labelled width×epochs) and, given `law` (frontier.law_frontier), the joint law's
    best width per budget."""
    _need(table, ("width", "epochs", "train_flops", "mean"), "plot_frontier")
    colours = _colours(table["width"])
    for width, cell in table.groupby("width"):
        ax.scatter(cell["train_flops"], 1 - cell["mean"], color=colours[width], alpha=0.6, label=f"width={width}")
    front = pareto_frontier(table)
    ax.step(front["train_flops"], 1 - front["mean"], where="post", color="k", label="data frontier")
    for _, row in front.iterrows():
        ax.annotate(f"{row['width']:g}×{row['epochs']:g}", (row["train_flops"], 1 - row["mean"]), fontsize="x-small",
                    xytext=(3, 3), textcoords="offset points")
    if law is not None and len(law):
        for width, part in law.groupby("width"):
            ax.plot(part["train_flops"], 1 - part["ema_val_acc"], "--", lw=2, color=colours.get(width, "grey"),
                    label=f"joint law: best width={width}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(FLOPS_LABEL)
    ax.set_ylabel(ERROR_LABEL)
    ax.set_title("compute-optimal frontier")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, which="both")
    return ax


def _colours(widths) -> dict:
    values = sorted(pd.unique(pd.Series(widths)))
    cmap = colormaps["viridis"]
    return {w: cmap(0.85 * i / max(1, len(values) - 1)) for i, w in enumerate(values)}


def _need(table: pd.DataFrame, columns: tuple, where: str) -> None:
    missing = [c for c in columns if c not in table]
    if missing:
        raise AnalysisError(f"{where} needs an aggregate() table with columns {list(columns)}; missing {missing}")
    if table.empty:
        raise AnalysisError(f"{where} got an empty table; nothing to plot")
