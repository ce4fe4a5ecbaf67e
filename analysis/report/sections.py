"""The report's sections after the summary, as markdown lines, from a computed study.StudyAnalysis."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..allocation import pareto_frontier
from ..cells import Cells, noise_scaling
from ..errors import NotComputed
from ..fits import NOT_IDENTIFIED, FitResult
from ..holdout import z_text
from ..optimize import HUBER_DELTA
from ..provenance import trainer_lines
from ..records import METRIC
from ..study import StudyAnalysis
from .markdown import fmt, format_aggregate, format_cv, format_law_params, markdown_table, pct

__all__ = ["provenance_section", "runs_section", "cells_section", "laws_section", "held_out_section",
           "checks_section", "allocation_section", "comparison_section"]


def provenance_section(a: StudyAnalysis) -> list[str]:
    ok = a.runs
    lines = ["## Where the runs came from", ""]
    columns = [c for c in ("device_name", "device", "precision", "versions.torch") if c in ok]
    if ok.empty or not columns:
        return lines + ["No ok runs carry device or version fields.", ""]
    counts = ok[columns].apply(lambda column: column.map(_text)).value_counts().reset_index(name="runs")
    lines += [markdown_table(counts), ""]
    for column, label in (("host", "hosts"), ("git_commit", "git commits"), ("versions.speedrun", "speedrun versions")):
        if column in ok:
            values = sorted(ok[column].map(_text).unique())
            lines.append(f"- {label}: {', '.join(values[:8])}{' …' if len(values) > 8 else ''}")
    if "git_dirty" in ok and ok["git_dirty"].fillna(False).astype(bool).any():
        lines.append(f"- {int(ok['git_dirty'].fillna(False).astype(bool).sum())} runs came from a dirty work tree")
    return lines + trainer_lines(ok) + [""]


def runs_section(a: StudyAnalysis) -> list[str]:
    loaded = a.loaded
    lines = ["## Runs", "", f"- ok: {loaded.n_ok}",
             f"- failed: {loaded.n_failed} (excluded from every fit)",
             f"- diverged: {loaded.n_diverged} (training stopped at a non-finite loss; excluded from every fit)",
             f"- corrupt files (skipped): {len(loaded.corrupt)}",
             f"- incompatible files (skipped): {len(loaded.incompatible)}",
             f"- duplicate run_ids (skipped): {len(loaded.duplicates)}"]
    for label, items in (("failed", loaded.failures), ("diverged", loaded.divergences)):
        for run_id, error in items[:10]:
            lines.append(f"  - {label} {run_id}: {error}")
    for note in a.notes[:20]:
        lines.append(f"  - {note}")
    g = a.grid
    table = g.table.assign(width=g.table["width"].map(lambda v: f"{v:g}"),
                           epochs=g.table["epochs"].map(lambda v: f"{v:g}"))
    lines += ["", f"Grid ({g.source}); runs per cell:", "", markdown_table(table), ""]
    if g.running:
        lines += [f"{g.running} run(s) in progress now (lock files in locks/).", ""]
    return lines


def cells_section(a: StudyAnalysis) -> list[str]:
    return ["## Results per grid cell", "", markdown_table(format_aggregate(a.table)), "",
            "n: runs (seeds); SE: standard error of the mean; 95% CI: Student-t interval of the mean (— where n = 1).",
            ""]


def _noise_test(cells: Cells) -> str:
    test = noise_scaling(cells)
    if test is None:
        return " (too few cells with differing runs to test that assumption)"
    return (f" (the test of that assumption, over the {test.n_cells} cells with differing runs: their log variance "
            f"rises with log squared error at a slope of {test.slope:.2f} ± {test.slope_se:.2f}, where 0 means a "
            f"constant SD and 1 a proportional one, and the proportional model's log-likelihood is "
            f"{test.loglik_gain:+.1f} against the constant one's: {test.verdict()})")


def laws_section(a: StudyAnalysis) -> list[str]:
    o = a.options
    c = a.cells
    noise = (f"each cell's standard error of its mean, with one run's SD taken proportional to the cell's error: its "
             f"own runs' SD relative to its error, moderated towards the pooled relative SD ({100 * c.seed_rel_sd:.2f}% "
             f"of the error, {c.seed_dof} dof) for cells with ≥ 3 runs, the pooled relative SD for the rest"
             + _noise_test(c) if c.mode == "cells" else "one relative SD for every cell, estimated from the fit's "
             "residuals (no cell has two differing runs)")
    loss = ("weighted least squares" if o["loss"] == "linear" else
            f"a Huber loss (δ = {HUBER_DELTA} standard errors) on the standardised residuals")
    lines = ["## Scaling laws", "",
             f"Each law is fitted to the cells' mean log error (error = 1 − {METRIC}) by {loss}; weights: {noise}. "
             f"95% intervals: {o['n_boot']} parametric bootstrap draws (cell means and their standard errors "
             "redrawn, refitted), widened by √(χ²/dof ÷ its expectation) whenever χ²/dof exceeds that expectation, "
             "significantly or not (p from a χ² test; p < 0.05 means the law misses the cells by more than seed "
             "noise). A0, B0 and a0 are each term's value at the centre of the fitted data, in error units. A "
             f"parameter at a bound, whose interval reaches a bound or spans more than two orders of magnitude is "
             f"**{NOT_IDENTIFIED}**. The law used below is the one with the lowest leave-one-cell-out CV error, or "
             "the simplest within one standard error of it.", "",
             markdown_table(format_cv(a.choice)), "", f"Chosen: **{a.choice.chosen or 'none'}** — {a.choice.reason}.",
             ""]
    for name, fit in a.choice.fits.items():
        if not isinstance(fit, FitResult):
            continue
        centre = (f"N0 = {fit.centre['num_params']:.4g} parameters, " if fit.law.uses_num_params else "") + \
            f"E0 = {fit.centre['epochs']:.3g} epochs"
        lines += [f"### {name}: `{fit.law.formula}`", "",
                  f"{fit.n_runs} runs in {fit.n_cells} cells; centre {centre}; {fit.n_boot} bootstrap draws.", "",
                  markdown_table(format_law_params(fit)), ""]
        if math.isfinite(fit.chi2_per_dof) and math.isfinite(fit.lack_of_fit_p):
            lines.append(f"- χ²/dof = {fit.chi2_per_dof:.3g} on {fit.dof} dof (≈{fit.chi2_expected:.2f} expected "
                         f"from seed noise): {fit.lack_of_fit()}")
        lines += [f"- {note}" for note in fit.notes]
        lines += [""]
    return lines


def held_out_section(a: StudyAnalysis) -> list[str]:
    fit = a.fit
    lines = ["## Held-out and corner checks", ""]
    if fit is None:
        return lines + ["No law was chosen, so nothing was held out.", ""]
    lines += [f"The {fit.name} law refitted without the held-out cells predicts them; z = (observed − predicted) / "
              "√(se_pred² + sem_obs²), where sem_obs uses the pooled relative seed SD times the cell's error for cells "
              "with fewer than 3 runs. |z| > 2 is a miss.", ""]
    for check in a.held_out:
        lines.append(f"- {check.summary()}")
        if check.computed:
            t = check.table
            shown = pd.DataFrame({"width": t["width"].map(lambda v: f"{v:g}"), "epochs": t["epochs"].map(lambda v: f"{v:g}"),
                                  "n": t["n"], "observed (%)": [f"{pct(o)} ± {pct(s)}" for o, s in zip(t["observed"], t["sem_obs"])],
                                  "predicted (%)": [pct(v) for v in t["predicted"]],
                                  "95% CI of the mean (%)": [f"[{pct(lo)}, {pct(hi)}]" for lo, hi in zip(t["ci_low"], t["ci_high"])],
                                  "z": [z_text(z) for z in t["z"]]})
            lines += ["", markdown_table(shown), ""]
            if check.fit.not_identified:
                lines += [f"  Without those cells, {', '.join(check.fit.not_identified)} {NOT_IDENTIFIED}.", ""]
    lines += ["Leave-one-cell-out predictions of every cell are in the parity figure.", ""]
    return lines


def checks_section(a: StudyAnalysis) -> list[str]:
    if not a.checks and not a.checks_error:
        return []
    lines = ["## Out-of-sample checks (checks.toml)", ""]
    if a.checks_error:
        return lines + [f"Not run: {a.checks_error}", ""]
    for r in a.checks:
        lines += [f"### {r.check.name}", ""]
        p = r.prediction
        if p is None:
            lines += [f"Not computed: {r.reason}", ""]
            continue
        if r.why_law:
            lines += [f"Not the chosen law: {r.why_law}.", ""]
        lines += [f"Predicted from this study's records alone ({p.law} law, {p.n_runs} runs): mean "
                  f"{pct(p.predicted_acc)}% (95% CI [{pct(p.ci95[0])}, {pct(p.ci95[1])}]); one run: 95% prediction "
                  f"interval [{pct(p.pi95[0])}, {pct(p.pi95[1])}] (one run's SD there {pct(p.seed_sd)} points)."
                  + (f" num_params {p.num_params:,.0f} from the {p.num_params_source}." if p.num_params_source not in ("", "records") else "")
                  + (f" Extrapolated: {p.extrapolation}." if p.extrapolated else "")
                  + (f" Rests on {', '.join(p.not_identified)} ({NOT_IDENTIFIED})." if p.not_identified else ""), ""]
        if r.table.empty:
            lines += [f"Nothing to compare: {r.reason}", ""] + _alternatives(a, r)
            continue
        shown = pd.DataFrame({"record": r.table["record"], "precision": r.table["precision"],
                              f"{METRIC} (%) ± one run's SD": [f"{pct(v)} ± {pct(p.seed_sd)}" for v in r.table[METRIC]],
                              "like-for-like": ["yes" if v else f"no: {d}" for v, d in zip(r.table["like_for_like"], r.table["differences"])],
                              "z": [z_text(z) for z in r.table["z"]]})
        lines += [markdown_table(shown), "",
                  f"- like-for-like records (n = {r.n_like}): z = {z_text(r.z_like)}" if r.n_like else
                  "- no like-for-like record: the law's prediction is not tested on its own terms",
                  f"- all records, like-for-like or not (n = {r.n_all}): z = {z_text(r.z_all)}", ""]
        lines += _alternatives(a, r)
    return lines + _joint_lines(a)


def _joint_lines(a: StudyAnalysis) -> list[str]:
    """The observed checks taken together under each law: one test per law, correlation between checks included."""
    if not a.joint:
        return []
    rows = []
    for j in a.joint_chosen_first():
        low, high = j.offset_ci
        reasons: dict = {}
        for check, why in j.left_out:
            reasons.setdefault(why, []).append(f"{check.width} × {check.epochs}")
        rows.append({"law": j.law + (" (chosen)" if j.law == a.fit.name else ""),
                     "checks": ", ".join(f"{c.width} × {c.epochs}" for c in j.checks),
                     "χ² (dof)": f"{j.chi2:.2f} ({j.k})", "p": f"{j.p:.2g}" + (" (misses)" if j.misses else ""),
                     "common offset (points)": f"{100 * j.offset:+.2f}", "95% CI": f"[{100 * low:+.2f}, {100 * high:+.2f}]",
                     "offset z": z_text(j.offset_z), "largest ρ": f"{j.max_corr:.2f}",
                     "not taken": "; ".join(f"{', '.join(cells)}: {why}" for why, cells in reasons.items()) or "—"})
    return ["### All checks together", "",
            "Every check is predicted by the same fit, so the checks' prediction errors are correlated (largest ρ "
            "is the largest correlation between two of them) and their z's are not independent tests. Each law is "
            "tested once on all the checks it predicts, with the like-for-like runs only: χ² = rᵀC⁻¹r on one degree "
            "of freedom per check, where r holds each check's observed − predicted mean and C is the bootstrap "
            "covariance of the predictions plus each check's seed noise (one run's SD at the check, squared, / n) on its diagonal. The common "
            "offset is the mean of r weighted by C⁻¹: below zero, the law overstates the checks as a whole.", "",
            markdown_table(pd.DataFrame(rows)), ""]


def _alternatives(a: StudyAnalysis, r, which: str | None = None, own: str = "the check's law") -> list[str]:
    """The check's cell under every other fitted law: how much the prediction rests on the chosen law's form.
    `which` says what the z column is against (default: the check's records)."""
    if not r.alternatives:
        return []
    rows, zs = [], r.z_by_law()
    for name, p in ((r.prediction.law, r.prediction), *r.alternatives):
        fit, score = a.choice.fits.get(name), a.choice.scores.get(name)
        cv = f"{score.rmse:.3g}" if score is not None and np.isfinite(score.mse) else "—"
        misfit = (f"p = {fit.lack_of_fit_p:.2g}" + (" (misses)" if fit.misses_cells else "")
                  if isinstance(fit, FitResult) and math.isfinite(fit.lack_of_fit_p) else "—")
        if isinstance(p, NotComputed):
            rows.append({"law": name, "predicted mean (%)": "—", "95% CI of the mean (%)": f"not computed: {p}",
                         "CV RMSE (points)": cv, "χ² lack of fit": misfit, "not identified": "—", "z": "—"})
            continue
        z = zs.get(name, math.nan)
        rows.append({"law": name + (f" ({own})" if p is r.prediction else ""),
                     "predicted mean (%)": pct(p.predicted_acc),
                     "95% CI of the mean (%)": f"[{pct(p.ci95[0])}, {pct(p.ci95[1])}]",
                     "CV RMSE (points)": cv, "χ² lack of fit": misfit,
                     "not identified": ", ".join(p.not_identified) or "none", "z": z_text(z)})
    if which is None:
        which = ("z against the like-for-like records" if r.n_like else "z against all records" if len(r.table)
                 else "no records to give a z yet")
    return ["The same cell under every law fitted to the study (" + which + "; CV RMSE and lack of "
            "fit as in Scaling laws). Outside the fitted range a prediction rests on the law's form; the spread "
            f"of these means, {100 * r.spread():.2f} points, is how much.", "",
            markdown_table(pd.DataFrame(rows)), ""]


def allocation_section(a: StudyAnalysis) -> list[str]:
    lines = ["## Compute-optimal allocation", ""]
    front = pareto_frontier(a.table)
    shown = pd.DataFrame({"train_flops": [fmt(v, 3) for v in front["train_flops"]],
                          "width": front["width"].map(lambda v: f"{v:g}"), "epochs": front["epochs"].map(lambda v: f"{v:g}"),
                          f"{METRIC} (%)": [f"{pct(m)} ± {pct(s)}" for m, s in zip(front["mean"], front["sem"])]})
    lines += ["Cells that no cheaper cell beats (the data's frontier in FLOPs):", "", markdown_table(shown), ""]
    fit = a.fit
    if fit is None:
        return lines + ["No law was chosen, so there is no efficient envelope.", ""]
    if a.allocation is not None:
        value, (lo, hi), unidentified = a.allocation.value, a.allocation.interval, a.allocation.unidentified
        lines += [f"Allocation exponent of the {fit.name} law: N_opt ∝ C^a, a = β/(α+β) = {value:.3g} (95% bootstrap "
                  f"interval [{lo:.3g}, {hi:.3g}]; exact when training FLOPs ∝ N·E, and here FLOPs per epoch / "
                  f"num_params varies by {_ratio_drift(a):.1%} over the fitted widths)"
                  + (f" — **rests on an exponent that is {NOT_IDENTIFIED}: no allocation claim is made**." if unidentified else "."), ""]
    else:
        lines += [f"The {fit.name} law has no closed-form allocation exponent; its envelope follows.", ""]
    for env, unit in ((a.envelope, "FLOPs"), (a.envelope_time, "s")):
        if env is None:
            continue
        t = env.table.iloc[:: max(1, len(env.table) // 10)]
        shown = pd.DataFrame({f"budget ({unit})": [fmt(v, 3) + (" (extrapolated)" if x else "") for v, x in zip(t["budget"], t["extrapolated"])],
                              "best width": [f"{v:.3g}" for v in t["width"]],
                              "bootstrap 95% range": [f"{lo:.3g}–{hi:.3g}" for lo, hi in zip(t["width_low"], t["width_high"])],
                              "epochs": [f"{v:.3g}" for v in t["epochs"]], f"predicted {METRIC} (%)": [pct(v) for v in t["acc"]],
                              "why extrapolated": t["note"]})
        label = "training FLOPs (any width from half the smallest to twice the largest)" if unit == "FLOPs" else \
            "measured train_time_s (the observed widths, each at its median seconds per epoch)"
        lines += [f"Best width per budget in {label}, under the {fit.name} law:", "", markdown_table(shown), ""]
    if fit.not_identified:
        lines += [f"These optima rest on the {fit.name} law, whose {', '.join(fit.not_identified)} "
                  f"{'is' if len(fit.not_identified) == 1 else 'are'} {NOT_IDENTIFIED}.", ""]
    if a.allocation_note:
        lines += [a.allocation_note, ""]
    return lines


def comparison_section(a: StudyAnalysis) -> list[str]:
    lines = ["## Comparison with the published reference", ""]
    ref, result = a.reference, a.comparison
    if ref is None:
        return lines + [f"Not computed: {result}", ""]
    if result is None:
        lines += [f"The study has no width {ref.width} × {ref.epochs} epochs cell, the cell of the reference "
                  f"({ref.name}; {ref.provenance}, {ref.hardware}, n = {ref.n}), so nothing here reproduces it."]
        lines += _reference_prediction(a)
        return lines + ([""] if lines[-1] else [])
    lines += [f"Reference: {ref.name} — {ref.source}; {ref.provenance} values, {ref.hardware}, n = {ref.n}.", ""]
    if isinstance(result, NotComputed):
        return lines + [f"Not computed: {result.reason}", ""]
    decide = [f"- To decide it: {a.comparison_runs.text()}."] if a.comparison_runs is not None else []
    return lines + [f"- {result.summary()}", *decide,
                    f"- Welch's 95% interval of (ours − reference), in points; TOST with margin ±{100 * result.margin:.2g} "
                    "points: 'reproduced' only when that equivalence is shown.", ""]


def _reference_prediction(a: StudyAnalysis) -> list[str]:
    """How far the study's law carries: the reference's cell predicted from the study, beside its values."""
    r = a.reference_check
    if r is None:
        return []
    if r.prediction is None:
        return ["", f"Its cell is not predicted either: {r.reason}."]
    p, ref = r.prediction, r.reference
    lines = ["", f"Predicted from this study's records alone ({p.law} law, {p.n_runs} runs): mean "
             f"{pct(p.predicted_acc)}% (95% CI [{pct(p.ci95[0])}, {pct(p.ci95[1])}]); the reference's mean is "
             f"{pct(r.reference_mean)}% ± {pct(r.reference_sd)} SD (n = {ref.n}), z = {z_text(r.z(p))}."
             + (f" Extrapolated: {p.extrapolation}." if p.extrapolated else "")
             + (f" Rests on {', '.join(p.not_identified)} ({NOT_IDENTIFIED})." if p.not_identified else ""), "",
             "Not like-for-like, so this is no test of the law: the reference's runs are the seed's own code on "
             f"{ref.hardware} hardware, this study's ran {_setup(a.runs)}. A z here mixes how far the law's form "
             "carries with that change of setup.", ""]
    if r.why_law:
        lines[1:1] = [f"Not the chosen law: {r.why_law}.", ""]
    return lines + _alternatives(a, r, which="z of the reference's mean", own="the prediction's law")


def _setup(runs) -> str:
    """'on cpu in fp32' or the like: the devices and precisions of the study's runs."""
    values = {c: " and ".join(sorted({str(v) for v in runs[c].dropna()})) if c in runs else "" for c in ("device", "precision")}
    return f"on {values['device'] or 'an unrecorded device'} in {values['precision'] or 'an unrecorded precision'}"


def _ratio_drift(a: StudyAnalysis) -> float:
    widths = np.unique(a.fit.cells.width)
    try:
        ratio = a.sizes.values("flops_per_epoch", widths) / a.sizes.values("num_params", widths)
    except Exception:  # noqa: BLE001 - a missing size only drops this one figure
        return float("nan")
    return float(ratio.max() / ratio.min() - 1.0)


def _text(value) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
