"""Equivalence entries of a study's `checks.toml`: does a change that makes a check's runs differ from the study
(bf16 for fp32, another CPU) change what they train to? Each entry names one cell in two folders of records and
is decided by Welch's test and TOST at the study's margin (analysis.comparison), from the records, every time the
report is written; one left undecided also gets the runs that would decide it (analysis.tost_power): runs a side,
or runs of `records` alone where `against_fixed`:

    [[equivalence]]
    name = "bf16 against fp32 at width 16 x 10, one CPU"
    records = "../cpu-bf16"          # folders relative to the study folder (need not exist yet)
    against = "../cpu-fp32-16x10"
    width = 16
    epochs = 10
    precision = "fp32"               # optional, on either side: keep the runs that ran in it
    against_precision = "fp32"       # (needed where a folder holds more than one at the cell)
    against_fixed = true             # optional: `against` will get no more runs (another machine's, or the
                                     # study's own, which runs from here would mix)

The report gives each verdict, and for a check whose runs differ from the study in precision, what the entries
comparing those two precisions decided: a check in another precision stands in for the study's only where they
are equivalent.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .checks import checks_file_tables, entry_problems, records_folder
from .comparison import EQUIVALENCE_MARGIN, Comparison, cell_runs, compare
from .errors import AnalysisError
from .records import METRIC, load_quietly
from .tost_power import RunsNeeded, runs_needed

__all__ = ["Equivalence", "EquivalenceResult", "read_equivalences", "run_equivalence"]

_REQUIRED = {"name": str, "records": str, "against": str, "width": int, "epochs": int}
_OPTIONAL = {"precision": str, "against_precision": str, "against_fixed": bool}


@dataclass(frozen=True)
class Equivalence:
    name: str
    records: Path
    against: Path
    width: int
    epochs: int
    precision: str | None = None
    against_precision: str | None = None
    against_fixed: bool = False  # `against` gets no more runs: the runs that would decide it are `records`' alone


@dataclass(frozen=True)
class EquivalenceResult:
    entry: Equivalence
    comparison: Comparison | None  # records − against; None when it could not be computed (`reason`)
    precisions: tuple = ()  # (records side, against side): what each side's runs ran in
    reason: str = ""
    runs: RunsNeeded | None = None  # where undecided: the runs that would decide it (analysis.tost_power)

    @property
    def outcome(self) -> str:
        """'equivalent', 'different', 'undecided' (Comparison.outcome), or 'not computed'."""
        return self.comparison.outcome if self.comparison is not None else "not computed"

    def compares(self, one: str, other: str) -> bool:
        """True when the two sides ran in `one` and `other`, in either order."""
        return sorted(self.precisions) == sorted((one, other))


def read_equivalences(study_dir: str | Path) -> list[Equivalence]:
    """The [[equivalence]] tables of `study_dir/checks.toml` ([] without them); one AnalysisError lists every
    problem."""
    path, entries, problems = checks_file_tables(study_dir, "equivalence")
    out = []
    for k, entry in enumerate(entries, 1):
        where = f"equivalence {k}"
        bad = entry_problems(where, entry, _REQUIRED, _OPTIONAL)
        if not bad:
            (records, bad_records), (against, bad_against) = (records_folder(path, where, key, entry[key])
                                                              for key in ("records", "against"))
            bad = bad_records + bad_against
            if not bad:
                out.append(Equivalence(entry["name"], records, against, entry["width"], entry["epochs"],
                                       entry.get("precision"), entry.get("against_precision"),
                                       entry.get("against_fixed", False)))
        problems += bad
    if problems:
        raise AnalysisError(f"{path}: {'; '.join(problems)}")
    return out


def run_equivalence(entry: Equivalence, margin: float = EQUIVALENCE_MARGIN) -> EquivalenceResult:
    """The entry's cell in its two folders, Welch and TOST at ±`margin` (a fraction); an entry whose folders lack
    the runs (not trained yet, fewer than two, mixed precisions) gets the reason instead."""
    try:
        sides = [_cell(folder, entry.width, entry.epochs, precision)
                 for folder, precision in ((entry.records, entry.precision), (entry.against, entry.against_precision))]
        comparison = compare(*(runs[METRIC].to_numpy(dtype=float) for runs in sides), margin)
    except AnalysisError as exc:
        return EquivalenceResult(entry, None, reason=str(exc))
    precisions = tuple(str(runs["precision"].iloc[0]) if "precision" in runs else "unknown" for runs in sides)
    return EquivalenceResult(entry, comparison, precisions,
                             runs=runs_needed(comparison, reference_fixed=entry.against_fixed))


def _cell(folder: Path, width: int, epochs: int, precision: str | None):
    if not folder.is_dir():
        raise AnalysisError(f"no records yet: the folder {folder} does not exist")
    try:
        runs = cell_runs(load_quietly(folder), width, epochs, precision)
    except AnalysisError as exc:
        raise AnalysisError(f"{folder}: {exc}") from None
    if len(runs) < 2:
        raise AnalysisError(f"{folder}: 1 ok run at width={width}, epochs={epochs}; Welch's test needs 2 or more a "
                            "side (a standard deviation): run more seeds of the cell")
    return runs
