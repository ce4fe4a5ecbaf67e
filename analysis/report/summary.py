"""The report's opening: what the data say, with n and intervals, and what they cannot say.

Every sentence is built from the computed structures (study.StudyAnalysis), never from fixed text: a claim
that rests on a parameter flagged "not identified" is either left out or marked as resting on it.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..cells import noise_scaling
from ..errors import NotComputed
from ..fits import NOT_IDENTIFIED, FitResult
from ..holdout import z_text
from ..study import StudyAnalysis, cells_missing_from_fits, held_out_of
from .equivalences import equivalence_summary, precision_caveats

__all__ = ["summary_lines", "provisional_lines"]


def _p(v: float) -> str:
    return f"{100 * v:.2f}%" if math.isfinite(v) else "—"


def _pts(v: float) -> str:
    return f"{100 * v:.2f}" if math.isfinite(v) else "—"


def provisional_lines(a: StudyAnalysis) -> list[str]:
    """The banner at the top of a report on an incomplete grid (empty when the grid is complete)."""
    if not a.grid.provisional:
        return []
    t = a.grid.totals
    lines = [f"> **PROVISIONAL: the grid is incomplete, so every fit below is provisional.** Runs: {t['ok']} done, "
             f"{t['pending']} pending, {t['failed']} failed, {t['diverged']} diverged of {t['expected']} intended"
             f"{f'; {a.grid.running} running now' if a.grid.running else ''}. Grid: {a.grid.source}.", ">"]
    missing = a.grid.missing()
    if missing:
        lines.append(f"> Cells with no ok run: {', '.join(missing)}.")
    by_cells: dict = {}
    for law, cells in cells_missing_from_fits(a):
        by_cells.setdefault(cells, []).append(law)
    for cells, laws in by_cells.items():
        which = f"the {laws[0]} fit" if len(laws) == 1 else f"the {', '.join(laws)} fits"
        lines.append(f"> Missing from {which}: {cells}.")
    short = [f"{r.width:g}×{r.epochs:g} ({r.ok}/{r.expected})" for r in a.grid.table.itertuples()
             if 0 < r.ok < r.expected]
    if short:
        lines.append(f"> Cells with fewer runs than intended (ok/intended): {', '.join(short)}.")
    return lines + [""]


def summary_lines(a: StudyAnalysis) -> list[str]:
    lines = ["## Summary", ""]
    if a.cells is None:
        return lines + [f"No law was fitted: {a.no_fit_reason}." if a.no_fit_reason else "No ok runs: nothing to "
                        "summarise.", ""]
    c, t = a.cells, a.table
    best = t.loc[t["mean"].idxmax()]
    ci = _best_interval(a, best)
    lines.append(f"- **Data**: {c.n_runs} ok runs in {len(c)} cells ({_plural('width', c.width)} × "
                 f"{_plural('epochs', c.epochs)}; {_range(c.n)} run{'s' if c.n.max() > 1 else ''} per cell). Best cell: width {best['width']:g} × "
                 f"{best['epochs']:g} epochs, {_p(best['mean'])}{ci}, n = {int(best['n'])}. "
                 + _seed_noise(a))
    lines += _trend_lines(a)
    fit = a.fit
    if fit is None:
        reason = a.choice.reason if a.choice else "no law was fitted"
        lines.append(f"- **Law**: none chosen: {reason}. No scaling conclusion can be drawn.")
        if a.checks or a.checks_error or (a.directory / "checks.toml").is_file():
            lines.append("- **Checks** (checks.toml): not run: there is no law to predict them with.")
        return lines + equivalence_summary(a) + [""] + _cannot(a)
    lines.append(f"- **Law**: {fit.name} (`{fit.law.formula}`), chosen by {a.choice.reason}. "
                 f"{_fit_quality(fit)}")
    lines.append(f"- **Exponents**: {_exponents(fit)}.")
    corner = held_out_of(a, "corner")
    if corner is not None:
        lines.append(f"- **Corner test** ({corner.label}, fitted without it): {_held_text(corner)}")
    for result in a.checks:
        lines.append(f"- **Check: {result.check.name}**: {_check_text(result)}{_other_laws(a, result)}")
    if a.checks_error:
        lines.append(f"- **Checks**: checks.toml could not be used: {a.checks_error}")
    if a.joint:
        lines.append(f"- **Checks together** (each law tested once on all the checks it predicts, their correlation "
                     f"through the one fit included): {_joint_text(a)}")
    lines += equivalence_summary(a)
    lines.append(f"- **Compute-optimal allocation**: {_allocation_text(a)}")
    if a.comparison is not None and not isinstance(a.comparison, NotComputed):
        decide = f": {a.comparison_runs.text()}" if a.comparison_runs is not None else ""
        lines.append(f"- **Reproduction** of {a.reference.name}: {a.comparison.verdict}{decide}.")
    if a.reference_check is not None and a.reference_check.prediction is not None:
        lines.append(f"- **Published reference**: {_reference_text(a.reference_check)}{_other_laws(a, a.reference_check)}")
    return lines + [""] + _cannot(a)


def _reference_text(r) -> str:
    """The reference's cell (not in the study) predicted from it, beside the reference's values; never a test."""
    p, ref = r.prediction, r.reference
    return (f"{ref.name}, width {ref.width} × {ref.epochs} epochs, is not in this study; "
            f"{'by the ' + p.law + ' law, ' if r.why_law else ''}predicted {_p(p.predicted_acc)} "
            f"(95% CI [{_p(p.ci95[0])}, {_p(p.ci95[1])}]{'; extrapolated: ' + p.extrapolation if p.extrapolated else ''}). "
            f"The reference's mean is {_p(r.reference_mean)} ({ref.provenance}, {ref.hardware}, n = {ref.n}): "
            f"z = {z_text(r.z(p))}. Not like-for-like (other hardware and precision, the seed's code), so this shows "
            "how far the law carries, not whether it holds.")


def _best_interval(a: StudyAnalysis, best) -> str:
    """The cell's Student-t 95% interval; for a cell with fewer than 3 runs, from the pooled relative seed SD (its own
    SD from one or two runs would make the interval meaningless), said so."""
    c = a.cells
    k = c.index(best["width"], best["epochs"])
    if best["n"] >= 3 and math.isfinite(best["ci_low"]):
        return f" (95% CI [{_p(best['ci_low'])}, {_p(best['ci_high'])}])"
    if c.mode != "cells" or k is None:
        return ""
    half = stats.t.ppf(0.975, c.seed_dof) * c.sem[k]
    return f" (95% CI [{_p(best['mean'] - half)}, {_p(best['mean'] + half)}], from the pooled relative seed SD)"


def _seed_noise(a: StudyAnalysis) -> str:
    c = a.cells
    if c.mode == "residual":
        return "No cell has two differing runs, so seed noise is not measured."
    low, high = c.sd_at(c.acc.max()), c.sd_at(c.acc.min())
    return (f"Seed noise: one run's SD, taken proportional to its cell's error, is {100 * c.seed_rel_sd:.2f}% of the "
            f"error (pooled, {c.seed_dof} degrees of freedom): {_pts(low)} points at the most accurate cell, "
            f"{_pts(high)} at the least{_noise_verdict(c)}.")


def _noise_verdict(cells) -> str:
    test = noise_scaling(cells)
    return "" if test is None else f" (proportional against constant: {test.verdict()}; see Scaling laws)"


def _trend_lines(a: StudyAnalysis) -> list[str]:
    """Observed trends with their SE: longest vs shortest epochs at each width, widest vs narrowest width at
    the largest epochs both ran."""
    c = a.cells
    parts = []
    for w in np.unique(c.width):
        here = np.flatnonzero(c.width == w)
        if len(here) < 2:
            continue
        lo, hi = here[np.argmin(c.epochs[here])], here[np.argmax(c.epochs[here])]
        parts.append(f"{w:g}: {_diff(c, hi, lo)}")
    lines = []
    if parts:
        lines.append(f"- **Epochs** (longest minus shortest run, points ± SE, by width): {'; '.join(parts)}.")
    common = [e for e in np.unique(c.epochs) if (c.epochs == e).sum() >= 2]
    if common:
        e = max(common)
        here = np.flatnonzero(c.epochs == e)
        lo, hi = here[np.argmin(c.width[here])], here[np.argmax(c.width[here])]
        lines.append(f"- **Width** (at {e:g} epochs, width {c.width[hi]:g} minus width {c.width[lo]:g}): "
                     f"{_diff(c, hi, lo)} points.")
    return lines


def _diff(c, i: int, j: int) -> str:
    d = c.acc[i] - c.acc[j]
    se = math.sqrt(c.sem[i] ** 2 + c.sem[j] ** 2) if c.mode == "cells" else float("nan")
    return f"{100 * d:+.2f}" + (f" ± {100 * se:.2f}" if math.isfinite(se) else "")


def _fit_quality(fit: FitResult) -> str:
    if not math.isfinite(fit.chi2_per_dof):
        return "Its residuals set the seed noise (no replicates), so lack of fit cannot be tested."
    text = f"χ²/dof = {fit.chi2_per_dof:.3g} on {fit.dof} dof (≈{fit.chi2_expected:.2f} expected from seed noise)"
    return text + f": {fit.lack_of_fit()}."


def _exponents(fit: FitResult) -> str:
    parts = []
    for name in fit.law.exponents:
        lo, hi = fit.intervals[name]
        value = f"{name} = {fit.params[name]:.3g}" + (f" [95% {lo:.3g}, {hi:.3g}]" if math.isfinite(lo) else "")
        if name in fit.not_identified:
            value += f" — **{NOT_IDENTIFIED}** ({fit.flag_reasons[name]})"
        parts.append(value)
    return "; ".join(parts)


def _held_text(h) -> str:
    if not h.computed:
        return f"not computed: {h.reason}."
    r = h.table.iloc[0]
    rests = f" Rests on {', '.join(h.fit.not_identified)} ({NOT_IDENTIFIED})." if h.fit.not_identified else ""
    return (f"predicted {_p(r['predicted'])} (95% CI [{_p(r['ci_low'])}, {_p(r['ci_high'])}]), observed "
            f"{_p(r['observed'])} ± {_pts(r['sem_obs'])} (n = {int(r['n'])}): z = {z_text(r['z'])}.{rests}")


def _check_text(r) -> str:
    if r.prediction is None:
        return f"not compared: {r.reason}."
    p = r.prediction
    text = f"by the {p.law} law, since the chosen law has a curve per fitted width only: " if r.why_law else ""
    text += (f"predicted {_p(p.predicted_acc)} (mean: 95% CI [{_p(p.ci95[0])}, {_p(p.ci95[1])}]; one run: 95% PI "
             f"[{_p(p.pi95[0])}, {_p(p.pi95[1])}]{'; extrapolated: ' + p.extrapolation if p.extrapolated else ''}). ")
    if r.table.empty:
        text += f"Not observed yet: {r.reason}."
    else:
        obs = [f"{_p(row['ema_val_acc'])} ({row['precision']}{'' if row['like_for_like'] else ', not like-for-like'}, "
               f"z = {z_text(row['z'])})" for _, row in r.table.iterrows()]
        text += f"Observed: {'; '.join(obs)}. "
        if r.n_like:
            text += f"Like-for-like z = {z_text(r.z_like)} (n = {r.n_like}); all records: z = {z_text(r.z_all)} (n = {r.n_all})."
        else:
            text += f"No like-for-like record; all records: z = {z_text(r.z_all)} (n = {r.n_all})."
    if p.not_identified:
        text += f" The prediction rests on {', '.join(p.not_identified)} ({NOT_IDENTIFIED})."
    return text


def _joint_text(a: StudyAnalysis) -> str:
    """The chosen law's joint test and common offset, then which other laws the checks reject together."""
    joint = a.joint_chosen_first()
    parts = []
    if joint[0].law == a.fit.name:
        j, rest = joint[0], joint[1:]
        low, high = j.offset_ci
        verdict = "they reject it" if j.misses else "consistent with it"
        lean = ("no systematic lean" if low <= 0 <= high else
                f"the law {'overstates' if j.offset < 0 else 'understates'} them as a whole")
        parts.append(f"under the chosen {j.law} law the {j.k} checks give χ² = {j.chi2:.2f} on {j.k} dof "
                     f"(p = {j.p:.2g}): {verdict}; their common offset, observed − predicted, is "
                     f"{100 * j.offset:+.2f} points (95% CI [{100 * low:+.2f}, {100 * high:+.2f}]): {lean}.")
    else:
        rest = joint
        parts.append(f"the chosen {a.fit.name} law predicts fewer than two of the observed checks.")
    rejected = [f"{j.law} (p = {j.p:.2g}, {j.k} checks)" for j in rest if j.misses]
    kept = [f"{j.law} (p = {j.p:.2g}, {j.k} checks)" for j in rest if not j.misses]
    if rejected:
        parts.append(f"Together they reject {', '.join(rejected)}.")
    if kept:
        parts.append(f"They do not reject {', '.join(kept)}.")
    return " ".join(parts)


def _other_laws(a: StudyAnalysis, r) -> str:
    """' Other laws: separable 94.67% (misses the study's cells, χ² p = 9e-12), …' — the model dependence."""
    if r.prediction is None:
        return ""
    parts = []
    for name, p in r.alternatives:
        if isinstance(p, NotComputed):
            continue
        fit = a.choice.fits.get(name)
        misses = isinstance(fit, FitResult) and fit.misses_cells
        parts.append(f"{name} {_p(p.predicted_acc)}"
                     + (f" (misses the study's cells, χ² p = {fit.lack_of_fit_p:.1g})" if misses else ""))
    return f" Other laws: {'; '.join(parts)}." if parts else ""


def _allocation_text(a: StudyAnalysis) -> str:
    parts = []
    if a.allocation is not None:
        value, (lo, hi), unidentified = a.allocation.value, a.allocation.interval, a.allocation.unidentified
        text = f"N_opt ∝ C^a with a = β/(α+β) = {value:.3g} [95% {lo:.3g}, {hi:.3g}]"
        parts.append(text + (f", **resting on an exponent that is {NOT_IDENTIFIED}**: no allocation claim" if unidentified else ""))
    else:
        parts.append(f"the {a.fit.name} law gives no closed-form allocation exponent")
    env = a.envelope
    if env is not None:
        inside = env.table[~env.table["extrapolated"]]
        if len(inside):
            row = inside.iloc[-1]
            rests = (f" (rests on {', '.join(a.fit.not_identified)}, {NOT_IDENTIFIED})"
                     if a.fit.not_identified else "")
            parts.append(f"at {row['budget']:.3g} FLOPs, the largest budget the law covers without extrapolating, the "
                         f"best width is {row['width']:.3g} (bootstrap 95% range {row['width_low']:.3g}–"
                         f"{row['width_high']:.3g}){rests}")
        else:
            parts.append("every budget's optimum lies outside the fitted widths or epochs (extrapolated)")
    elif a.allocation_note:
        parts.append(a.allocation_note)
    return "; ".join(parts) + "."


def _cannot(a: StudyAnalysis) -> list[str]:
    lines = ["**What these data cannot say**:", ""]
    fit = a.fit
    if fit is not None and fit.not_identified:
        lines.append(f"- The {fit.name} law's {', '.join(fit.not_identified)} {'is' if len(fit.not_identified) == 1 else 'are'} "
                     f"{NOT_IDENTIFIED}: nothing here rests on {'it' if len(fit.not_identified) == 1 else 'them'} "
                     "unless marked.")
    if fit is not None and not fit.law.uses_num_params:
        lines.append("- The chosen law has a curve per width and no width exponent: it says nothing about widths "
                     "not run.")
    if a.cells is not None:
        lines.append(f"- Anything beyond {_span('width', a.cells.width)} and {_span('epochs', a.cells.epochs)} is "
                     "extrapolation; the intervals assume the law's form holds there.")
    for r in a.checks:
        if r.prediction is None or not r.prediction.extrapolated:
            continue
        if len(r.predictions()) > 1:
            lines.append(f"- Which law's form holds at {r.check.width} × {r.check.epochs} epochs: {_span_text(r)}; "
                         f"the check's prediction rests on the {r.prediction.law} law's form.{_told_apart(r)}")
    lines += precision_caveats(a)
    r = a.reference_check
    if r is not None and len(r.predictions()) > 1:
        lines.append(f"- Which law's form holds at the reference's cell, {r.reference.width} × {r.reference.epochs} "
                     f"epochs: {_span_text(r)}. The reference's runs differ from this study's in hardware, "
                     "precision and code, so they cannot tell the laws apart.")
    if a.grid.provisional:
        lines.append("- The grid is incomplete: these are provisional numbers.")
    return lines + [""]


def _span_text(r) -> str:
    """'the fitted laws predict it 87.36%–89.24%, a spread of 1.88 points' for a cell asked of every law."""
    low, high = r.span()
    return f"the fitted laws predict it {_p(low)}–{_p(high)}, a spread of {100 * (high - low):.2f} points"


def _told_apart(r) -> str:
    """What the check's runs say about the laws: which predictions they sit within |z| <= 2 of, which they rule out."""
    zs = r.z_by_law()
    if len(zs) < 2:
        return ""
    n = r.n_like or r.n_all
    held = [name for name, z in zs.items() if abs(z) <= 2]
    out = [f"{name} (z = {z_text(z)})" for name, z in zs.items() if not abs(z) <= 2]
    runs = f"{n} {'like-for-like ' if r.n_like else ''}{'run lies' if n == 1 else 'runs lie'}"
    if not out:
        return (f" Its {runs} within |z| ≤ 2 of every law's prediction, so {'it' if n == 1 else 'they'} cannot tell "
                "the laws apart.")
    return f" Its {runs} more than 2 SE from {', '.join(out)}; within 2 SE: {', '.join(held) or 'no law'}."


def _plural(name: str, values) -> str:
    values = np.unique(values)
    label = name if name == "epochs" or len(values) == 1 else name + "s"
    return f"{label} {_list(values)}"


def _span(name: str, values) -> str:
    lo, hi = np.min(values), np.max(values)
    return f"{name} {lo:g}" if lo == hi else f"{name}s {lo:g}–{hi:g}" if name != "epochs" else f"epochs {lo:g}–{hi:g}"


def _range(values) -> str:
    lo, hi = int(np.min(values)), int(np.max(values))
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def _list(values) -> str:
    return ", ".join(f"{v:g}" for v in np.unique(values))
