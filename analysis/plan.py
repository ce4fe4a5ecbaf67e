"""Which cell to train next: for every candidate cell the study has not run, its cost, what each fitted law
predicts there, how many standard errors apart the chosen law and each other law would be after n runs, and how
much of a target cell's uncertainty those runs would remove were the chosen law right.

- Cost: n × the cell's training FLOPs (sizes.py: exact at widths that are multiples of 8), and hours on the
  study's own hardware: the median seconds per training FLOP of its ok runs at that width, else over all its
  runs (an estimate; a width never run is slower or faster per FLOP than the rest).
- Separation from law L: |chosen − L| / √(se_chosen² + se_L² + sd²/n), with sd one run's SD at the cell
  (cells.py). Where it is 3 or more, n runs there should tell the two laws apart; below 2 they cannot.
- Target share: the share of the target's bootstrap variance that n runs at the cell would remove under the
  chosen law, Cov(t, c)² / ((Var(c) + sd²/n) · Var(t)) over the draws (the Gaussian update). It assumes the
  law's form, so it measures how well the runs pin down its parameters, not whether the form holds: cells near
  the target test the form, cells far away only tighten it.
A check chosen from this table belongs in checks.toml, with its predictions committed before it is trained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import AnalysisError
from .predict import predict_acc
from .study import StudyAnalysis

__all__ = ["Candidate", "plan_cells", "plan_text", "default_candidates"]


@dataclass(frozen=True)
class Candidate:
    width: float
    epochs: float
    law: str  # the chosen law, the one the separations and the target share are about
    runs: int
    flops: float  # training FLOPs of all `runs`
    hours: float  # estimated on the study's hardware; NaN without timed records
    predictions: dict  # law → (mean accuracy, se of the mean)
    seed_sd: float  # one run's SD at the cell, under the chosen law
    separation: dict = field(default_factory=dict)  # other law → SEs between it and the chosen law after `runs`
    target_share: float = float("nan")  # share of the target's variance the runs would remove
    note: str = ""


def default_candidates(study: StudyAnalysis) -> tuple[list, list]:
    """The study's widths and epochs, each axis extended to 2× its largest value (epochs to 4× as well)."""
    widths = sorted({float(w) for w in study.cells.width} | {2 * float(study.cells.width.max())})
    epochs = sorted({float(e) for e in study.cells.epochs} | {2 * float(study.cells.epochs.max()),
                                                             4 * float(study.cells.epochs.max())})
    return widths, epochs


def plan_cells(study: StudyAnalysis, widths=None, epochs=None, *, runs: int = 3, target=(128, 80)) -> list[Candidate]:
    """Every (width, epochs) not in the study, cheapest first (widths, epochs: `default_candidates` where None);
    see the module docstring."""
    if study.choice is None or study.choice.fit is None:
        raise AnalysisError(f"{study.directory}: no law is fitted ({study.no_fit_reason or 'no ok runs'}); fit one "
                            "before planning what to run next")
    if runs < 1:
        raise AnalysisError(f"runs={runs}: plan for one or more runs per cell")
    default_widths, default_epochs = default_candidates(study)
    widths, epochs = widths or default_widths, epochs or default_epochs
    chosen, fits, sizes = study.choice.fit, study.choice.fitted(), study.sizes
    if not chosen.law.uses_num_params:  # a per-width law cannot reach new widths: plan with the rule's choice among laws in N
        chosen, _ = study.choice.for_width(float("inf"), study.cells.width)
    if not chosen.law.uses_num_params:
        raise AnalysisError("only the per-width law could be fitted, and it cannot predict a width never run")
    target_draws = _draws(chosen, sizes, *target)
    have = {(float(w), float(e)) for w, e in zip(study.cells.width, study.cells.epochs)}
    checked = _checked(study)
    per_flop = _seconds_per_flop(study.runs)
    out = []
    for w in widths:
        for e in epochs:
            if (float(w), float(e)) in have:
                continue
            flops = runs * sizes.value("flops_per_epoch", w)[0] * e
            rate = per_flop.get(float(w), per_flop.get("all", math.nan))
            predictions, chosen_draws = {}, None
            for fit in fits:
                if not fit.law.predicts_width(w):
                    continue
                point, draws = predict_acc(fit, sizes.value("num_params", w)[0], e, w)
                predictions[fit.name] = (float(point[0]), float(np.std(draws[:, 0], ddof=1)) if len(draws) > 1
                                         else math.nan)
                chosen_draws = draws[:, 0] if fit is chosen else chosen_draws
            mean, se = predictions[chosen.name]
            sd = float(chosen.seed_sd_at(mean))
            separation = {name: abs(m - mean) / math.sqrt(se**2 + s**2 + sd**2 / runs)
                          for name, (m, s) in predictions.items() if name != chosen.name}
            share = _share(target_draws, chosen_draws, sd**2 / runs)
            out.append(Candidate(float(w), float(e), chosen.name, runs, flops, flops * rate / 3600, predictions, sd,
                                 separation, share, checked.get((float(w), float(e)), "")))
    return sorted(out, key=lambda c: (c.flops, c.width))


def plan_text(study: StudyAnalysis, candidates: list, target) -> str:
    if not candidates:
        return f"{study.name}: every candidate cell is already in the study; pass --widths and --epochs"
    laws = [f.name for f in study.choice.fitted() if any(f.name in c.predictions for c in candidates)]
    chosen = candidates[0].law
    header = ["cell", "runs", "cost (PFLOP)", "≈ hours"] + [f"{law} (%)" for law in laws]
    header += [f"SEs from {law}" for law in laws if law != chosen] + [f"share of {target[0]} × {target[1]}'s variance removed", "note"]
    rows = []
    for c in candidates:
        row = [f"{c.width:g} × {c.epochs:g}", str(c.runs), f"{c.flops / 1e15:.3g}",
               "—" if not math.isfinite(c.hours) else f"{c.hours:.2g}"]
        row += [f"{100 * c.predictions[law][0]:.2f}" if law in c.predictions else "—" for law in laws]
        row += [f"{c.separation[law]:.1f}" if law in c.separation else "—" for law in laws if law != chosen]
        row += ["—" if not math.isfinite(c.target_share) else f"{100 * c.target_share:.0f}%", c.note]
        rows.append(row)
    lines = [f"{study.name}: cells not yet run, cheapest first; {chosen} is the law the study's rule chose for new "
             "widths. 'SEs from' a law: how many standard errors apart it and the chosen law would be after the "
             f"runs (3 or more: the runs tell them apart). The last share: how much of the chosen law's uncertainty "
             f"at width {target[0]} × {target[1]} epochs the runs would remove if its form holds (near cells test "
             "the form; far ones only tighten it). Hours: from the study's own seconds per FLOP.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _draws(fit, sizes, width, epochs) -> np.ndarray:
    point, draws = predict_acc(fit, sizes.value("num_params", width)[0], epochs, width)
    return draws[:, 0]


def _share(target: np.ndarray, cell: np.ndarray, noise: float) -> float:
    if len(target) < 3:
        return math.nan
    cov = np.cov(target, cell)
    return float(cov[0, 1] ** 2 / ((cov[1, 1] + noise) * cov[0, 0])) if cov[0, 0] > 0 else math.nan


def _seconds_per_flop(runs: pd.DataFrame) -> dict:
    """{width: median train_time_s / train_flops, "all": over every run}; {} without timed records."""
    if not {"train_time_s", "train_flops"} <= set(runs):
        return {}
    rate = pd.to_numeric(runs["train_time_s"], errors="coerce") / pd.to_numeric(runs["train_flops"], errors="coerce")
    rate = rate[np.isfinite(rate) & (rate > 0)]
    if rate.empty:
        return {}
    out = {float(w): float(v) for w, v in rate.groupby(runs.loc[rate.index, "width"].astype(float)).median().items()}
    out["all"] = float(rate.median())
    return out


def _checked(study: StudyAnalysis) -> dict:
    """{(width, epochs): "a check: …"} for the cells of checks.toml that have runs."""
    out = {}
    for result in study.checks:
        if result.n_all:
            c = result.check
            runs = (f"{result.n_like} like-for-like run(s)" if result.n_like == result.n_all else
                    f"{result.n_like} like-for-like run(s) of {result.n_all}")
            out[(float(c.width), float(c.epochs))] = f"a check: {runs} in {c.records.name}"
    return out

