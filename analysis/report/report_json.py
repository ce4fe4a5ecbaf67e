"""`<study_dir>/report.json`: the report's numbers for machines — cells, the chosen law with its parameters and 95%
intervals, every law's CV score and lack of fit, the held-out cells and the checks with their z — built from the
same StudyAnalysis the markdown report renders, so the two never disagree. Schema: results/README.md.

Accuracies and errors are fractions like the records'; only the CV error is in points, as the report states it.
Strict JSON: a number that is not finite is written as null."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..fits import FitResult
from ..records import METRIC, REPORT_JSON
from ..study import StudyAnalysis
from ..tost_power import POWER
from ..writer import write_atomic

__all__ = ["REPORT_JSON", "REPORT_JSON_VERSION", "report_dict", "write_report_json"]

# Bumped when a key is renamed or removed or changes meaning; adding keys keeps it (as with records).
REPORT_JSON_VERSION = 1


def write_report_json(study_dir: str | Path, analysis: StudyAnalysis, figures: list | None = None) -> Path:
    """Write report.json beside report.md; `figures` is reporting's [(stem, title, path or reason)]."""
    text = json.dumps(report_dict(analysis, figures), indent=1, allow_nan=False)
    return write_atomic(Path(study_dir) / REPORT_JSON, text + "\n")


def report_dict(a: StudyAnalysis, figures: list | None = None) -> dict:
    loaded = a.loaded
    out = {
        "report_version": REPORT_JSON_VERSION,
        "study": a.name,
        "metric": METRIC,
        "provisional": bool(a.grid.provisional),
        "runs": {"ok": loaded.n_ok, "failed": loaded.n_failed, "diverged": loaded.n_diverged,
                 "corrupt": len(loaded.corrupt), "incompatible": len(loaded.incompatible),
                 "duplicates": len(loaded.duplicates)},
        "cells": _records(a.table) if a.table is not None else [],
        "seed_noise": None,
        "no_fit_reason": a.no_fit_reason or None,
        "chosen_law": None,
        "choice_reason": None,
        "laws": [],
        "held_out": [],
        "checks": [],
        "checks_together": [],
        "equivalences": [],
        "figures": [f"figures/{stem}.png" for stem, _, where in figures or [] if isinstance(where, Path)],
    }
    if a.cells is not None:
        out["seed_noise"] = {"rel_sd": _num(a.cells.seed_rel_sd), "dof": int(a.cells.seed_dof), "mode": a.cells.mode}
    if a.choice is not None:
        out["chosen_law"] = a.choice.chosen
        out["choice_reason"] = a.choice.reason
        out["laws"] = [_law(name, fit, a.choice.scores.get(name), name == a.choice.chosen)
                       for name, fit in a.choice.fits.items()]
    out["held_out"] = [{"label": h.label, "law": h.law, "computed": h.computed, "reason": h.reason or None,
                        "cells": _records(h.table)} for h in a.held_out]
    out["checks"] = [_check(c) for c in a.checks]
    out["checks_together"] = [_joint(j) for j in a.joint_chosen_first()]
    out["equivalences"] = [_equivalence(r) for r in a.equivalences]
    return out


def _law(name: str, fit, score, chosen: bool) -> dict:
    if not isinstance(fit, FitResult):
        return {"name": name, "fitted": False, "reason": getattr(fit, "reason", str(fit)), "chosen": chosen}
    parameters = {}
    for param, value in fit.params.items():
        low, high = fit.intervals.get(param, (math.nan, math.nan))
        parameters[param] = {"estimate": _num(value), "ci95": [_num(low), _num(high)],
                             "identified": param not in fit.not_identified,
                             "why_not_identified": _text(fit.flag_reasons.get(param))}
    return {
        "name": name, "fitted": True, "chosen": chosen, "formula": fit.law.formula,
        "parameters": parameters,
        "centre": {k: _num(v) for k, v in fit.centre.items()},
        "n_runs": int(fit.n_runs), "n_cells": int(fit.n_cells), "excluded": list(fit.excluded),
        "lack_of_fit": {"chi2": _num(fit.chi2), "dof": int(fit.dof), "chi2_per_dof": _num(fit.chi2_per_dof),
                        "chi2_per_dof_expected": _num(fit.chi2_expected), "p": _num(fit.lack_of_fit_p),
                        "interval_widening": _num(math.sqrt(fit.inflation)), "misses_cells": bool(fit.misses_cells)},
        "cv": None if score is None else {"rmse_points": _num(score.rmse), "mse_points2": _num(score.mse),
                                          "mse_se": _num(score.mse_se), "complete": bool(score.complete),
                                          "reason": score.reason or None},
        "n_boot": int(fit.n_boot), "seed_rel_sd": _num(fit.seed_rel_sd), "notes": list(fit.notes),
    }


def _check(c) -> dict:
    p = c.prediction
    return {
        "name": c.check.name, "records": str(c.check.records), "width": int(c.check.width),
        "epochs": int(c.check.epochs),
        "prediction": None if p is None else {
            "law": p.law, "predicted_acc": _num(p.predicted_acc), "se_pred": _num(p.se_pred),
            "ci95": [_num(v) for v in p.ci95], "pi95": [_num(v) for v in p.pi95], "seed_sd": _num(p.seed_sd),
            "extrapolated": bool(p.extrapolated), "extrapolation": p.extrapolation or None},
        "why_law": c.why_law or None, "reason": c.reason or None,
        "z_like_for_like": _num(c.z_like), "n_like_for_like": int(c.n_like), "z_all": _num(c.z_all),
        "n_all": int(c.n_all),
        "z_by_law": {law: _num(z) for law, z in c.z_by_law().items()},
        "observations": _records(c.table),
    }


def _equivalence(r) -> dict:
    e, c = r.entry, r.comparison
    sides = {"records": str(e.records), "against": str(e.against), "width": int(e.width), "epochs": int(e.epochs),
             "precisions": list(r.precisions) or None, "outcome": r.outcome, "reason": r.reason or None}
    if c is None:
        return {"name": e.name, **sides}
    return {"name": e.name, **sides, "n": c.n, "mean": _num(c.mean), "std": _num(c.std), "against_n": c.reference_n,
            "against_mean": _num(c.reference_mean), "against_std": _num(c.reference_std),
            "difference": _num(c.difference), "ci95": [_num(c.ci_low), _num(c.ci_high)], "welch_p": _num(c.p_value),
            "margin": _num(c.margin), "tost_p": _num(c.tost_p), "runs_needed": _runs_needed(r.runs)}


def _runs_needed(runs) -> dict | None:
    if runs is None:
        return None
    return {"power": POWER, "as_seen": runs.as_seen, "at_zero": runs.at_zero, "design": runs.design}


def _joint(j) -> dict:
    low, high = j.offset_ci
    return {"law": j.law, "k": j.k, "checks": [c.name for c in j.checks], "chi2": _num(j.chi2), "p": _num(j.p),
            "rejects": bool(j.misses), "offset": _num(j.offset), "offset_se": _num(j.offset_se),
            "offset_ci95": [_num(low), _num(high)], "max_corr": _num(j.max_corr),
            "left_out": [{"check": c.name, "why": why} for c, why in j.left_out]}


def _records(frame) -> list[dict]:
    """A DataFrame's rows as JSON objects: numpy scalars as Python ones, NaN as null."""
    return [{str(k): _value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _value(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return _num(v)
    if v is None or isinstance(v, str):
        return v
    return str(v)  # paths, tuples of differences: their text, as the report prints them


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _text(flag) -> str | None:
    """A parameter's identification flag as the report words it (None: identified)."""
    return None if flag is None else str(flag)
