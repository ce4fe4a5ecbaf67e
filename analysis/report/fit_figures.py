"""Figures of the fits: standardised residuals, parity (held-out predictions against observations), and the
bootstrap pair plot of a law's exponents. Each draws on the Axes it is given (see data_figures.py)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from ..errors import AnalysisError
from ..fits import NOT_IDENTIFIED, FitResult
from ..holdout import HeldOut
from ..records import METRIC
from ..selection import CVScore
from ..sizes import WidthSizes
from .data_figures import ACC_LABEL, colours

# One (marker, colour) per checks.toml check, in order; none of the colours is the corner test's red.
CHECK_STYLES = (("D", "black"), ("^", "tab:orange"), ("v", "tab:brown"), ("P", "tab:pink"), ("X", "tab:gray"),
                ("h", "tab:olive"), ("<", "tab:cyan"), (">", "tab:blue"))

__all__ = ["plot_residuals", "plot_parity", "plot_checks", "plot_exponent_pairs"]


def plot_residuals(ax: Axes, fit: FitResult) -> Axes:
    """Each cell's standardised residual (observed − fitted log error, in its standard errors) vs epochs, per
    width; the band marks ±2."""
    cells = fit.cells
    if not len(fit.std_residuals):
        raise AnalysisError("the fit has no residuals to plot")
    palette = colours(cells.width)
    offsets = {w: 1.0 + 0.03 * (k - len(palette) / 2) for k, w in enumerate(palette)}  # spread widths apart
    for width in palette:
        here = cells.width == width
        ax.scatter(cells.epochs[here] * offsets[width], -fit.std_residuals[here], color=palette[width],
                   label=f"width={width:g}", zorder=3)
    ax.axhspan(-2, 2, color="grey", alpha=0.12, lw=0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    epochs = sorted(np.unique(cells.epochs))
    ax.set_xticks(epochs, [f"{e:g}" for e in epochs])
    ax.minorticks_off()
    ax.set_xlabel("epochs")
    ax.set_ylabel("standardised residual (accuracy above the law, in SEs)")
    ax.set_title(f"{fit.name} law: residuals; χ²/dof = {fit.chi2_per_dof:.3g} (≈{fit.chi2_expected:.2f} expected)",
                 fontsize="medium")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    return ax


def plot_parity(ax: Axes, score: CVScore, cells_sem: np.ndarray, widths: np.ndarray,
                held_out: list[HeldOut] | None = None, checks: list | None = None) -> Axes:
    """Observed cell means against their leave-one-cell-out predictions (±1 SE of the observation), with the
    corner test's prediction and its 95% interval in red, and the checks.toml records (one marker and colour per
    check; open where not like-for-like) against their predicted mean's 95% interval; the diagonal is perfect
    prediction."""
    palette = colours(widths)
    obs, pred = 100 * score.observed, 100 * score.predicted
    for width in palette:
        here = widths == width
        ax.errorbar(pred[here], obs[here], yerr=100 * np.nan_to_num(cells_sem[here]), fmt="o", ms=4, capsize=2,
                    color=palette[width], label=f"width={width:g}")
    bars = 100 * np.nan_to_num(cells_sem)
    values = np.concatenate([obs - bars, obs + bars, pred[np.isfinite(pred)]])
    for check in held_out or []:
        if check.computed and check.label.startswith("corner"):
            row = check.table.iloc[0]
            ax.errorbar([100 * row["predicted"]], [100 * row["observed"]],
                        xerr=[[100 * (row["predicted"] - row["ci_low"])], [100 * (row["ci_high"] - row["predicted"])]],
                        fmt="s", ms=7, color="red", mfc="none", capsize=3, label="corner test (95% CI)", zorder=4)
            values = np.concatenate([values, 100 * np.array([row["ci_low"], row["ci_high"]])])
    shown = [r for r in checks or [] if r.observed]
    for result, (marker, colour) in zip(shown, itertools.cycle(CHECK_STYLES)):
        p = result.prediction
        for like in (True, False):
            rows = result.table[result.table["like_for_like"] == like]
            if rows.empty:
                continue
            x, y = np.full(len(rows), 100 * p.predicted_acc), 100 * rows["ema_val_acc"].to_numpy(dtype=float)
            below, above = 100 * (p.predicted_acc - p.ci95[0]), 100 * (p.ci95[1] - p.predicted_acc)
            ax.errorbar(x, y, xerr=[[below] * len(rows), [above] * len(rows)], fmt="none", ecolor=colour, capsize=3,
                        zorder=3)
            ax.plot(x, y, marker, ms=7, color=colour, mfc=colour if like else "none", linestyle="none", zorder=4,
                    label=f"check {p.width:g}×{p.epochs:g}" + ("" if like else " (not like-for-like)"))
            values = np.concatenate([values, y, 100 * np.array(p.ci95)])
    values = values[np.isfinite(values)]
    lo, hi = values.min(), values.max()
    pad = 0.05 * (hi - lo) or 0.5
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.8)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(f"predicted without the cell, {ACC_LABEL}")
    ax.set_ylabel(f"observed cell mean, {ACC_LABEL}")
    ax.set_title(f"{score.law} law: leave-one-cell-out parity (RMSE {score.rmse:.3g} points)", fontsize="medium")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    return ax


LAW_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))  # the laws' curves; the first checks' law is solid


def plot_checks(ax: Axes, checks: list, fits: dict, table: pd.DataFrame, sizes: WidthSizes) -> Axes:
    """At each width a checks.toml check ran: every fitted law's curve in epochs, from the study's shortest runs
    out to the check's epochs (one line style per law; the law that predicted the checks at that width drawn
    thick, with its bootstrap 95% band), the study's own cell means at that width, and each check's runs with
    their mean ± 1 SE. Where the curves part, the check's runs say which law's form holds."""
    shown = [r for r in checks if r.observed]
    if not shown:
        raise AnalysisError("no check has both a prediction and runs to draw")
    widths = sorted({float(r.check.width) for r in shown})
    palette = colours(sorted(set(widths) | {float(w) for w in table["width"]}))
    own = shown[0].prediction.law  # solid; a width never run may be predicted by another law (LawChoice.for_width)
    laws = [f for f in fits.values() if isinstance(f, FitResult)]
    styles = {own: "-", **dict(zip([f.name for f in laws if f.name != own], LAW_STYLES))}
    values = []
    for width in widths:
        colour = palette[width]
        here = [r for r in shown if float(r.check.width) == width]
        cells = table[table["width"] == width]
        last = max([r.check.epochs for r in here] + list(cells["epochs"]))
        grid = np.geomspace(float(table["epochs"].min()), float(last), 80)
        size = sizes.value("num_params", width)[0]
        for fit in laws:
            if not fit.law.predicts_width(width):
                continue  # a curve per fitted width only: it has none here
            point, draws = fit.predict_error(size, grid, width)
            curve = 100 * (1.0 - point)
            if not np.isfinite(curve).all():
                continue
            mine = fit.name == here[0].prediction.law
            ax.plot(grid, curve, styles[fit.name], color=colour, lw=1.8 if mine else 1.0, alpha=1.0 if mine else 0.8,
                    zorder=2)
            if mine and len(draws) > 1:
                low, high = np.percentile(100 * (1.0 - draws), [2.5, 97.5], axis=0)
                ax.fill_between(grid, low, high, color=colour, alpha=0.15, lw=0, zorder=1)
            values.append(curve)
        if len(cells):
            ax.errorbar(cells["epochs"], 100 * cells["mean"], yerr=100 * np.nan_to_num(cells["sem"]), fmt="o", ms=4,
                        capsize=2, color=colour, mfc="white", zorder=3)
            values.append(100 * cells["mean"].to_numpy(dtype=float))
        for r in here:
            rows = r.compared()
            acc = 100 * rows[METRIC].to_numpy(dtype=float)
            sem = acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else 0.0
            ax.scatter(np.full(len(acc), r.check.epochs * 1.04), acc, s=14, marker="_", color=colour, zorder=3)
            ax.errorbar([r.check.epochs], [acc.mean()], yerr=[sem], fmt="D", ms=7, capsize=3, color=colour, mec="k",
                        zorder=4)
            values.append(acc)
    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    pad = 0.08 * (values.max() - values.min()) or 0.5
    ax.set_ylim(values.min() - pad, values.max() + pad)
    ax.set_xscale("log", base=2)
    ticks = sorted({float(e) for e in table["epochs"]} | {float(r.check.epochs) for r in shown})
    ax.set_xticks(ticks, [f"{e:g}" for e in ticks])
    ax.minorticks_off()
    fitted = (float(table["epochs"].min()), float(table["epochs"].max()))
    ax.axvspan(*fitted, color="grey", alpha=0.07, lw=0, zorder=0)
    handles = [Line2D([], [], color=palette[w], lw=6, alpha=0.6, label=f"width={w:g}") for w in widths]
    handles += [Line2D([], [], color="k", ls=styles[n], lw=1.0, label=n) for n in styles]
    handles += [Line2D([], [], color="grey", lw=4, alpha=0.4, label="thick, banded: the checks' law (95%)")]
    handles += [Line2D([], [], color="k", marker="o", mfc="white", ls="none", label="study cells (± 1 SE)"),
                Line2D([], [], color="k", marker="D", ls="none", label="check runs: mean ± 1 SE, and each run")]
    ax.legend(handles=handles, fontsize="x-small", loc="lower right")
    ax.set_xlabel(f"epochs (shaded: the fitted {fitted[0]:g}–{fitted[1]:g})")
    ax.set_ylabel(ACC_LABEL)
    ax.set_title("the checks against every law's curve, extrapolated from the study", fontsize="medium")
    ax.grid(alpha=0.3)
    return ax


def plot_exponent_pairs(ax: Axes, fit: FitResult) -> Axes:
    """The bootstrap draws of the law's exponents: a scatter of the first two, or a histogram of the only one;
    the point estimate in red. A flagged exponent says so in its axis label."""
    names = fit.law.exponents
    if not len(fit.draws):
        raise AnalysisError(f"the {fit.name} law has no bootstrap draws to plot")
    shown = fit.law.display(fit.draws)
    label = lambda n: n + (f" ({NOT_IDENTIFIED})" if n in fit.not_identified else "")  # noqa: E731
    if len(names) >= 2:
        i, j = fit.law.params.index(names[0]), fit.law.params.index(names[1])
        ax.scatter(shown[:, i], shown[:, j], s=6, alpha=0.35, color="C0", linewidths=0, label="bootstrap draws")
        ax.scatter([fit.params[names[0]]], [fit.params[names[1]]], color="red", marker="x", s=60, label="estimate")
        ax.set_xlabel(label(names[0]))
        ax.set_ylabel(label(names[1]))
    else:
        k = fit.law.params.index(names[0])
        ax.hist(shown[:, k], bins=30, color="C0", alpha=0.7, label="bootstrap draws")
        ax.axvline(fit.params[names[0]], color="red", label="estimate")
        ax.set_xlabel(label(names[0]))
        ax.set_ylabel("draws")
    ax.set_title(f"{fit.name} law: {fit.n_boot} bootstrap draws of its exponents", fontsize="medium")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    return ax
