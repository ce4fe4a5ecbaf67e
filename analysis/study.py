"""Everything the report says about a study, computed once: records, grid progress, cells, every law with
its cross-validation, held-out and corner checks, checks.toml, compute-optimal allocation and the comparison
with the published reference. `report` renders it; `predict` uses the part it needs."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .aggregates import aggregate, cell_columns
from .allocation import Allocation, Envelope, allocation_exponent, default_budgets, efficient_envelope, time_per_epoch
from .cells import Cells, cell_table
from .checks import ReferenceCheck, predict_reference, read_checks, run_check
from .comparison import EQUIVALENCE_MARGIN, Comparison, compare_cell
from .equivalence import read_equivalences, run_equivalence
from .errors import AnalysisError, NotComputed
from .holdout import HeldOut, holdout_checks
from .joint import joint_checks
from .progress import GridStatus, grid_status
from .records import LoadResult, load
from .reference import Reference, load_reference
from .selection import LawChoice, choose_law
from .sizes import WidthSizes, width_sizes
from .tost_power import RunsNeeded, runs_needed

__all__ = ["StudyAnalysis", "StudyRecords", "analyse", "load_study", "pool", "held_out_of", "cells_missing_from_fits", "DEFAULT_BOOT"]

# Bootstrap draws per fit. The calibration benchmark (results/benchmarks/calibration/) finds the same coverage
# of the corner prediction's 95% interval with 200 and 400 draws; 400 keeps the Monte Carlo error of an
# interval's end below a tenth of its width for the report, at about a second per law.
DEFAULT_BOOT = 400


@dataclass(frozen=True)
class StudyAnalysis:
    directory: Path
    name: str
    loaded: LoadResult
    frame: pd.DataFrame  # every record (ok, failed, diverged)
    runs: pd.DataFrame  # ok records only
    notes: tuple  # warnings raised while loading (skipped files)
    grid: GridStatus
    cells: Cells | None = None
    table: pd.DataFrame | None = None  # aggregate() of the ok runs
    sizes: WidthSizes | None = None
    choice: LawChoice | None = None
    held_out: list = field(default_factory=list)  # HeldOut, for the chosen law
    checks: list = field(default_factory=list)  # CheckResult
    joint: list = field(default_factory=list)  # JointCheck per law: every observed check at once
    checks_error: str = ""  # checks.toml could not be read
    equivalences: list = field(default_factory=list)  # EquivalenceResult per [[equivalence]] of checks.toml
    equivalences_error: str = ""  # its [[equivalence]] tables could not be read
    envelope: Envelope | None = None  # chosen law's best width per FLOP budget
    envelope_time: Envelope | None = None  # and per train_time_s budget (observed widths)
    allocation: Allocation | None = None  # the chosen law's allocation exponent, where it has one
    allocation_note: str = ""
    comparison: Comparison | NotComputed | None = None  # with the published reference (or why not)
    comparison_runs: RunsNeeded | None = None  # where that is undecided: runs of ours that would decide it
    reference: Reference | None = None
    reference_check: ReferenceCheck | None = None  # the reference's cell predicted from the study, where it lacks it
    options: dict = field(default_factory=dict)
    no_fit_reason: str = ""  # why no law was fitted at all (cells is None then)

    @property
    def fit(self):
        return self.choice.fit if self.choice else None

    def joint_chosen_first(self) -> list:
        """The checks taken together (JointCheck per law), the chosen law's first."""
        return sorted(self.joint, key=lambda j: self.fit is None or j.law != self.fit.name)


@dataclass(frozen=True)
class StudyRecords:
    """A study folder's records (every status), the warnings raised reading them, its grid status and name."""

    loaded: LoadResult
    notes: tuple
    grid: GridStatus
    name: str

    @property
    def frame(self) -> pd.DataFrame:
        return self.loaded.frame

    @property
    def runs(self) -> pd.DataFrame:
        """The ok records, keeping the frame's attrs (which columns came from `config`)."""
        runs = self.frame[self.frame["status"] == "ok"].copy()
        runs.attrs = dict(self.frame.attrs)
        return runs


def load_study(directory: str | Path, grid_file=None) -> StudyRecords:
    directory = Path(directory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load(directory, include_failed=True)
    frame = loaded.frame
    names = sorted(frame["study"].dropna().astype(str).unique()) if "study" in frame else []
    return StudyRecords(loaded, tuple(str(w.message) for w in caught), grid_status(directory, frame, grid_file),
                        ", ".join(names) or directory.name)


def pool(records: StudyRecords, folders) -> tuple[pd.DataFrame, str]:
    """The study's ok runs plus the ok runs under each of `folders` (a run found twice counts once), and a name for
    them all ("study + other"): a final fit on all the data, checks' runs included once they have been used as
    checks. AnalysisError if the added runs differ from the study's in any knob but width and epochs."""
    runs, names = records.runs, [records.name]
    columns = dict.fromkeys(runs.attrs.get("config_columns", ()))
    for folder in folders:
        extra = load(folder).frame
        columns.update(dict.fromkeys(extra.attrs.get("config_columns", ())))
        studies = sorted(extra["study"].dropna().astype(str).unique()) if "study" in extra else []
        names.append(", ".join(studies) or Path(folder).name)
        runs = pd.concat([runs, extra], ignore_index=True)
    if "run_id" in runs:
        runs = runs.drop_duplicates("run_id", ignore_index=True)
    runs.attrs["config_columns"] = tuple(columns)
    knobs = [c for c in cell_columns(runs) if c not in ("width", "epochs")]
    if folders and knobs:
        raise AnalysisError(f"the runs of {records.name} and {', '.join(map(str, folders))} differ in "
                            f"{', '.join(knobs)}; a law in width and epochs pools runs of one recipe only: add "
                            "folders whose runs all share the study's recipe")
    return runs, " + ".join(names)


def analyse(directory: str | Path, *, n_boot: int = DEFAULT_BOOT, seed: int = 0, n_jobs: int = 1,
            loss: str = "linear", grid_file=None, margin: float = EQUIVALENCE_MARGIN, laws=None,
            reference: Reference | None = None, with_checks: bool = True) -> StudyAnalysis:
    """Compute the whole analysis of the study in `directory` (see the module docstring)."""
    directory = Path(directory)
    records = load_study(directory, grid_file)
    loaded, frame, notes, grid, name = records.loaded, records.frame, records.notes, records.grid, records.name
    runs = records.runs
    options = {"n_boot": n_boot, "seed": seed, "n_jobs": n_jobs, "loss": loss, "margin": margin}
    base = dict(directory=directory, name=name, loaded=loaded, frame=frame, runs=runs, notes=notes, grid=grid,
                options=options)
    if runs.empty:
        return StudyAnalysis(**base)
    others = [c for c in cell_columns(runs) if c not in ("width", "epochs")]
    if others:  # the cells are still tabulated; no law in width and epochs is fitted across other knobs
        return StudyAnalysis(**base, table=aggregate(runs), no_fit_reason=(
            f"the runs also vary in {', '.join(others)}; a law in width and epochs needs every other knob fixed: "
            "put each value's records in its own folder"))
    cells, table, sizes = cell_table(runs), aggregate(runs), width_sizes(runs)
    fit_options = {"n_boot": n_boot, "seed": seed, "n_jobs": n_jobs, "loss": loss}
    choice = choose_law(cells, names=laws, **fit_options)
    fit = choice.fit
    extra: dict = {}
    if fit is not None:
        extra["held_out"] = holdout_checks(cells, fit.name, **fit_options)
        extra.update(_allocation(fit, sizes, runs, table))
        if with_checks:
            try:
                extra["checks"] = [_check(c, choice, cells, sizes, frame, name, grid.provisional)
                                   for c in read_checks(directory)]
                extra["joint"] = joint_checks(extra["checks"], choice.fitted())
            except AnalysisError as exc:
                extra["checks_error"] = str(exc)
    if with_checks:
        extra.update(_equivalences(directory, margin))
    reference = reference or _reference()
    extra["reference"] = reference
    extra["comparison"] = _compare(runs, reference, margin)
    if isinstance(extra["comparison"], Comparison):
        extra["comparison_runs"] = runs_needed(extra["comparison"], reference_fixed=True)
    if extra["comparison"] is None and fit is not None:  # the study lacks the reference's cell: predict it
        extra["reference_check"] = _reference_check(reference, choice, cells, sizes, frame, name, grid.provisional)
    return StudyAnalysis(**base, cells=cells, table=table, sizes=sizes, choice=choice, **extra)


def _equivalences(directory: Path, margin: float) -> dict:
    """checks.toml's [[equivalence]] entries, each decided from its folders' records (or why it cannot be)."""
    try:
        return {"equivalences": [run_equivalence(e, margin) for e in read_equivalences(directory)]}
    except AnalysisError as exc:
        return {"equivalences_error": str(exc)}


def _check(check, choice: LawChoice, cells: Cells, sizes: WidthSizes, frame: pd.DataFrame, name: str,
           provisional: bool):
    """A checks.toml cell, predicted by the law `LawChoice.for_width` picks, and asked of every fitted law."""
    fit, why = choice.for_width(check.width, cells.width)
    return run_check(check, fit, sizes, frame, study=name, provisional=provisional, others=choice.fitted(),
                     why_law=why)


def _reference_check(reference: Reference, choice: LawChoice, cells: Cells, sizes: WidthSizes,
                     frame: pd.DataFrame, name: str, provisional: bool) -> ReferenceCheck:
    """The reference's cell, absent from the study, predicted the same way."""
    fit, why = choice.for_width(reference.width, cells.width)
    return predict_reference(reference, fit, sizes, frame, study=name, provisional=provisional,
                             others=choice.fitted(), why_law=why)


def _allocation(fit, sizes: WidthSizes, runs: pd.DataFrame, table: pd.DataFrame) -> dict:
    """Budgets span the cells' mean costs (FLOPs: on to 10× the largest, marked extrapolated there)."""
    out: dict = {}
    try:
        out["envelope"] = efficient_envelope(fit, sizes, default_budgets(table["train_flops"]))
    except (AnalysisError, TypeError) as exc:
        out["allocation_note"] = f"no FLOPs envelope: {exc}"
    try:
        per_epoch = time_per_epoch(runs)
        out["envelope_time"] = efficient_envelope(fit, sizes, default_budgets(table["train_time_s"], n=30, beyond=1.0),
                                                  cost="train_time_s", per_epoch=per_epoch)
    except (AnalysisError, KeyError) as exc:
        out["allocation_note"] = (out.get("allocation_note", "") + f" no time frontier: {exc}").strip()
    out["allocation"] = allocation_exponent(fit)
    return out


def _reference() -> Reference | None:
    try:
        return load_reference()
    except AnalysisError:
        return None


def _compare(runs: pd.DataFrame, reference: Reference | None, margin: float):
    if reference is None:
        return NotComputed("no reference file")
    here = (runs["width"] == reference.width) & (runs["epochs"] == reference.epochs)
    if not here.any():
        return None
    try:
        return compare_cell(runs, reference, margin=margin)
    except AnalysisError as exc:
        return NotComputed(str(exc))


def held_out_of(analysis: StudyAnalysis, label: str) -> HeldOut | None:
    return next((h for h in analysis.held_out if h.label.startswith(label)), None)


def cells_missing_from_fits(analysis: StudyAnalysis) -> list[tuple[str, str]]:
    """(law, 'w×e, ...') for every fitted law that lacks some cell of the intended grid (or excluded one)."""
    if analysis.choice is None:
        return []
    intended = {(float(r.width), float(r.epochs)) for r in analysis.grid.table.itertuples()}
    lines = []
    for name, fit in analysis.choice.fits.items():
        if not hasattr(fit, "cells"):
            continue
        fitted = set(zip(fit.cells.width.astype(float), fit.cells.epochs.astype(float)))
        missing = sorted(intended - fitted)
        if missing:
            lines.append((name, ", ".join(f"{w:g}×{e:g}" for w, e in missing)))
    return lines
