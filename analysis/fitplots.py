"""Figures of the fits: standardised residuals, parity (held-out predictions against observations), and the
bootstrap pair plot of a law's exponents. Each draws on the Axes it is given (see plots.py)."""
from __future__ import annotations

import itertools

import numpy as np
from matplotlib.axes import Axes

from .errors import AnalysisError
from .fits import NOT_IDENTIFIED, FitResult
from .holdout import HeldOut
from .plots import ACC_LABEL, colours
from .selection import CVScore

# One (marker, colour) per checks.toml check, in order; none of the colours is the corner test's red.
CHECK_STYLES = (("D", "black"), ("^", "tab:orange"), ("v", "tab:brown"), ("P", "tab:pink"), ("X", "tab:gray"),
                ("h", "tab:olive"), ("<", "tab:cyan"), (">", "tab:blue"))

__all__ = ["plot_residuals", "plot_parity", "plot_exponent_pairs"]


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
    check; open where not like-for-like) against their predicted mean's 95% interval; the diagonal is perfect prediction."""
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
    shown = [r for r in checks or [] if r.prediction is not None and not r.table.empty]
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
