"""The report's words for checks.toml's [[equivalence]] entries (analysis.equivalence): one summary line, a
"cannot say" line for each check whose only runs differ from the study in precision, and a section with every
entry's numbers."""
from __future__ import annotations

import pandas as pd

from ..study import StudyAnalysis
from .markdown import markdown_table, pct

__all__ = ["equivalence_summary", "precision_caveats", "equivalence_section"]


def equivalence_summary(a: StudyAnalysis) -> list[str]:
    if a.equivalences_error:
        return [f"- **Equivalence**: checks.toml's [[equivalence]] tables could not be used: {a.equivalences_error}"]
    if not a.equivalences:
        return []
    margin = 100 * a.options.get("margin", 0.0)
    return ([f"- **Equivalence** (checks.toml; Welch and TOST at ±{margin:g} points):"]
            + [f"  - {r.entry.name}: {_short(r)}." for r in a.equivalences])


def precision_caveats(a: StudyAnalysis) -> list[str]:
    """For each check with no like-for-like run: whether its runs' precision stands in for the study's, as far as
    the equivalence entries comparing the two decide it."""
    study = sorted(set(a.runs["precision"].dropna().astype(str))) if "precision" in a.runs else []
    lines = []
    for r in a.checks:
        if r.table.empty or r.n_like or len(study) != 1:
            continue
        for other in sorted(set(r.table["precision"]) - set(study)):
            lines.append(f"- Whether the {other} runs of \"{r.check.name}\" test the {study[0]} law: "
                         f"{_stands_in(a, other, study[0])}")
    return lines


def equivalence_section(a: StudyAnalysis) -> list[str]:
    if a.equivalences_error:
        return ["## Equivalence (checks.toml)", "", f"Not run: {a.equivalences_error}", ""]
    if not a.equivalences:
        return []
    rows = []
    for r in a.equivalences:
        e, c = r.entry, r.comparison
        row = {"entry": e.name, "cell": f"{e.width} × {e.epochs}"}
        if c is None:
            rows.append({**row, "records": str(e.records), "against": str(e.against),
                         **dict.fromkeys(("difference (points, 95% CI)", "Welch p", "TOST p"), "—"),
                         "outcome": f"not computed: {r.reason}", _DECIDE: "—"})
            continue
        rows.append({**row, "records": f"{e.records} ({r.precisions[0]}): {pct(c.mean)} ± {pct(c.std)}, n = {c.n}",
                     "against": f"{e.against} ({r.precisions[1]}): {pct(c.reference_mean)} ± "
                                f"{pct(c.reference_std)}, n = {c.reference_n}",
                     "difference (points, 95% CI)": f"{100 * c.difference:+.2f} [{100 * c.ci_low:+.2f}, "
                                                    f"{100 * c.ci_high:+.2f}]",
                     "Welch p": f"{c.p_value:.2g}", "TOST p": f"{c.tost_p:.2g}", "outcome": c.outcome,
                     _DECIDE: _counts(r.runs)})
    margin = 100 * a.options.get("margin", 0.0)
    return ["## Equivalence (checks.toml)", "",
            "One cell in two folders of records, to ask whether what makes a check's runs differ from this study "
            f"(precision, CPU) changes what they train to. Mean ± SD of `ema_val_acc` in percent; the difference is "
            f"records − against with Welch's 95% interval; equivalent means TOST rejects a difference of ±{margin:g} "
            "points or more at the 5% level, different means Welch's test finds one, undecided is neither. For an "
            "undecided entry, the runs at which TOST would show equivalence with 80% power if the true difference is "
            "the one seen, and if it is 0: a side, or of `records` only where the entry fixes `against` "
            "(`against_fixed`); simulated with each side's SD as seen, so a rough guide while those SDs rest on few "
            "runs (analysis.tost_power).", "",
            markdown_table(pd.DataFrame(rows)), ""]


_DECIDE = "runs that would decide it (difference as seen / 0)"


def _counts(runs) -> str:
    if runs is None:
        return "—"
    return f"{runs.design}: {' / '.join(runs.counts())}"


def _short(r) -> str:
    c = r.comparison
    if c is None:
        return f"not computed ({r.reason})"
    return (f"{r.precisions[0]} − {r.precisions[1]} {100 * c.difference:+.2f} points (95% CI [{100 * c.ci_low:+.2f}, "
            f"{100 * c.ci_high:+.2f}], n = {c.n} against {c.reference_n}), {c.equivalence_verdict}"
            + (f": {r.runs.text(r.entry.records.name, r.entry.against.name)}" if r.runs is not None else ""))


def _stands_in(a: StudyAnalysis, other: str, study: str) -> str:
    found = [r for r in a.equivalences if r.comparison is not None and r.compares(other, study)]
    if not found:
        return (f"no [[equivalence]] entry in checks.toml compares {other} with {study}, so their z is a {other} "
                "result, not a test of the law on its own terms.")
    by = {outcome: [f"{r.entry.width} × {r.entry.epochs}" for r in found if r.outcome == outcome]
          for outcome in ("equivalent", "different", "undecided")}
    said = "; ".join(f"{outcome} at {', '.join(cells)}" for outcome, cells in by.items() if cells)
    if len(by["equivalent"]) == len(found):
        return f"{other} against {study} is {said}, so they stand in for {study} there, within the margin."
    return (f"{other} against {study} is {said}, so {other} is not shown to stand in for {study}: their z is a "
            f"{other} result, not a test of the law on its own terms.")
