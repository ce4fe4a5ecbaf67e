"""Out-of-sample checks named in a study folder's `checks.toml`: cells the study never ran, predicted from its
records alone and set against runs trained elsewhere.

    [[check]]
    name = "width 64 x 10 epochs, trained on this CPU"
    records = "../cpu-headline"      # a folder of run records, relative to the study folder (need not exist yet)
    width = 64
    epochs = 10

Every ok record of that width × epochs in the folder is shown with its z = (observed − predicted) /
√(se_pred² + seed_sd²) (seed_sd: one run's SD at that cell, from the study's seed noise). A record whose config
differs from the study's in anything but width, epochs, seed and execution-only fields (e.g. precision bf16
against fp32) is shown but marked not like-for-like; the combined z of the like-for-like records is given, and
separately, labelled, the z of all of them.

The check also asks every other law that was fitted to the study what it predicts at the cell (`alternatives`):
a prediction outside the fitted range rests on the law's form, and the spread across forms shows how much.

All observed checks are then taken together under each law (`analysis.joint`): their predictions come from one
fit, so their errors are correlated, and a z per check cannot say whether the law misses them as a whole.

The published reference's cell (results/reference/), where a study lacks it, is predicted the same way
(`predict_reference`) if the study ran the reference's recipe, and its values are set beside the prediction.
Those values come from other hardware and code, so that z is shown and never read as a test of the law.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import AnalysisError, NoRecordsError, NotComputed
from .fits import FitResult
from .predict import Prediction, predict_cell
from .records import EXECUTION_FIELDS, METRIC, load_quietly
from .reference import Reference
from .sizes import WidthSizes

__all__ = ["Check", "CheckResult", "ReferenceCheck", "read_checks", "run_check", "predict_reference",
           "recipe_differences", "combined_z", "CHECKS_FILE"]

CHECKS_FILE = "checks.toml"
CHECKS_TABLES = ("check", "equivalence")  # analysis.equivalence reads the second
_FIELDS = {"name": str, "records": str, "width": int, "epochs": int}
_NOT_IDENTITY = {"width", "epochs", "seed", "config.precision", "config.device"} | EXECUTION_FIELDS


@dataclass(frozen=True)
class Check:
    name: str
    records: Path  # the study folder joined with checks.toml's path, normalised (relative if it was)
    width: int
    epochs: int


class _ByLaw:
    """A cell predicted by one law (`prediction`) and asked of every other fitted law (`alternatives`)."""

    prediction: Prediction | None
    alternatives: tuple

    def predictions(self) -> dict:
        """{law: Prediction}: the prediction's law first, then every other law that could predict the cell."""
        if self.prediction is None:
            return {}
        laws = ((self.prediction.law, self.prediction), *self.alternatives)
        return {name: p for name, p in laws if not isinstance(p, NotComputed)}

    def span(self) -> tuple[float, float]:
        """(smallest, largest) predicted mean across the laws; NaNs without a prediction."""
        means = [p.predicted_acc for p in self.predictions().values()]
        return (min(means), max(means)) if means else (math.nan, math.nan)

    def spread(self) -> float:
        """Largest minus smallest predicted mean across the laws (0 with one law): how much rests on the form."""
        low, high = self.span()
        return high - low


@dataclass(frozen=True)
class CheckResult(_ByLaw):
    check: Check
    prediction: Prediction | None
    table: pd.DataFrame  # record, precision, ema_val_acc, like_for_like, differences, z
    z_like: float  # combined z of the like-for-like records' mean (NaN if none)
    n_like: int
    z_all: float  # the same over every matching record
    n_all: int
    reason: str = ""  # why nothing was compared
    alternatives: tuple = ()  # (law name, Prediction or NotComputed), for every other law fitted to the study
    why_law: str = ""  # why the prediction is not the study's chosen law's (empty when it is)

    @property
    def observed(self) -> bool:
        """Predicted and with runs to set against it (what the figures draw)."""
        return self.prediction is not None and not self.table.empty

    def compared(self) -> pd.DataFrame:
        """The records the laws are judged by: the like-for-like ones, else all of them."""
        return self.table[self.table["like_for_like"]] if self.n_like else self.table

    def z_by_law(self) -> dict:
        """{law: z of the `compared` records' mean against that law's prediction}, in the order of `predictions`
        (empty without records)."""
        if self.table.empty:
            return {}
        rows = self.compared()
        return {name: combined_z(rows, p)[0] for name, p in self.predictions().items()}


def read_checks(study_dir: str | Path) -> list[Check]:
    """The checks of `study_dir/checks.toml` ([] without the file); one AnalysisError lists every problem."""
    path, entries, problems = checks_file_tables(study_dir, "check")
    checks = []
    for k, entry in enumerate(entries, 1):
        bad = entry_problems(f"check {k}", entry, _FIELDS)
        if not bad:
            folder, bad = records_folder(path, f"check {k}", "records", entry["records"])
            if folder is not None:  # a folder that does not exist yet is a check whose study has not run
                checks.append(Check(entry["name"], folder, entry["width"], entry["epochs"]))
        problems += bad
    if problems:
        raise AnalysisError(f"{path}: {'; '.join(problems)}")
    return checks


def checks_file_tables(study_dir: str | Path, table: str) -> tuple[Path, list, list]:
    """(path, entries, problems) for one array of tables (`check`, `equivalence`) of `study_dir/checks.toml`:
    no entries without the file; problems name unknown top-level keys and a table not written as [[table]]."""
    path = Path(study_dir) / CHECKS_FILE
    if not path.is_file():
        return path, [], []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AnalysisError(f"{path}: not valid TOML ({exc}); fix the file or remove it") from None
    problems = [f"unknown top-level key {k!r} (only {' and '.join(f'[[{t}]]' for t in CHECKS_TABLES)} tables)"
                for k in data if k not in CHECKS_TABLES]
    entries = data.get(table, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append(f"`{table}` must be an array of tables: write each one as [[{table}]]")
        entries = []
    return path, entries, problems


def entry_problems(where: str, entry: dict, required: dict, optional: dict | None = None) -> list[str]:
    """What is wrong with one table of checks.toml: unknown, missing or mistyped keys (types: str, int > 0 or
    bool)."""
    fields = {**required, **(optional or {})}
    bad = [f"{where}: unknown key {key!r} (valid: {', '.join(fields)})" for key in entry if key not in fields]
    for key, kind in fields.items():
        value = entry.get(key)
        if value is None:
            if key in required:
                bad.append(f"{where}: `{key}` is missing")
        elif kind is bool:
            if not isinstance(value, bool):
                bad.append(f"{where}: `{key}` = {value!r} should be true or false")
        elif not isinstance(value, kind) or isinstance(value, bool):
            bad.append(f"{where}: `{key}` = {value!r} should be {'an integer' if kind is int else 'a string'}")
        elif kind is int and value <= 0:
            bad.append(f"{where}: `{key}` = {value} should be positive")
    return bad


def records_folder(path: Path, where: str, key: str, value: str) -> tuple[Path | None, list[str]]:
    """The folder `value` names, relative to checks.toml's, normalised (no machine's absolute path in reports); a
    file there is a problem, a folder that does not exist yet is not."""
    folder = Path(os.path.normpath(path.parent / value))
    if folder.exists() and not folder.is_dir():
        return None, [f"{where}: {key} {value!r} ({folder}) is a file; name a folder of run records"]
    return folder, []


def run_check(check: Check, fit: FitResult, sizes: WidthSizes, study_frame: pd.DataFrame, *, study: str = "",
              provisional: bool = False, others: tuple = (), why_law: str = "") -> CheckResult:
    """Predict the check's cell from `fit` and compare it with every ok record of that cell in its folder;
    `others` (FitResults of other laws) each predict the cell as well, for the report's model-dependence table."""
    empty = pd.DataFrame(columns=["record", "precision", METRIC, "like_for_like", "differences", "z"])
    alternatives = tuple(_alternative(other, sizes, check.width, check.epochs, study, provisional)
                         for other in others if other.name != fit.name)
    try:
        prediction = predict_cell(fit, sizes, check.width, check.epochs, study=study, provisional=provisional)
    except AnalysisError as exc:
        return CheckResult(check, None, empty, math.nan, 0, math.nan, 0, f"no prediction: {exc}", alternatives,
                           why_law)
    if not check.records.is_dir():
        return CheckResult(check, prediction, empty, math.nan, 0, math.nan, 0,
                           f"no records yet: the folder {check.records} does not exist (it appears when the check's "
                           "study first runs; if its runs exist elsewhere, fix `records` in checks.toml)",
                           alternatives, why_law)
    try:
        frame = load_quietly(check.records)
    except NoRecordsError as exc:
        return CheckResult(check, prediction, empty, math.nan, 0, math.nan, 0, str(exc), alternatives, why_law)
    cell = frame[(frame["width"] == check.width) & (frame["epochs"] == check.epochs)] if len(frame) else frame
    if cell.empty:
        return CheckResult(check, prediction, empty, math.nan, 0, math.nan, 0,
                           f"no ok records of width {check.width} × {check.epochs} epochs in {check.records}",
                           alternatives, why_law)
    identity = _identity(study_frame)
    rows = []
    scale = math.sqrt(prediction.se_pred**2 + prediction.seed_sd**2)
    for _, record in cell.iterrows():
        differences = [f"{c}: {_text(record.get(c))} (study: {', '.join(sorted(v))})" for c, v in identity.items()
                       if _text(record.get(c)) not in v]
        observed = float(record[METRIC])
        rows.append({"record": str(record.get("record_path", record.get("run_id"))),
                     "precision": _text(record.get("precision")), METRIC: observed,
                     "like_for_like": not differences, "differences": "; ".join(differences),
                     "z": (observed - prediction.predicted_acc) / scale if scale > 0 else math.nan})
    table = pd.DataFrame(rows)
    z_like, n_like = combined_z(table[table["like_for_like"]], prediction)
    z_all, n_all = combined_z(table, prediction)
    return CheckResult(check, prediction, table, z_like, n_like, z_all, n_all, alternatives=alternatives,
                       why_law=why_law)


@dataclass(frozen=True)
class ReferenceCheck(_ByLaw):
    """The published reference's cell, which the study never ran, predicted from the study's records alone and set
    against the reference's values: how far the study's law carries. Never like-for-like (other hardware and
    precision, and the seed's code rather than ours), so a z here mixes the law's extrapolation with that change
    of setup: it is shown, not used as a test of the law."""

    reference: Reference
    prediction: Prediction | None
    alternatives: tuple = ()
    why_law: str = ""
    reason: str = ""  # why there is no prediction

    @property
    def reference_mean(self) -> float:
        return float(np.mean(self.reference.values))

    @property
    def reference_sd(self) -> float:
        values = self.reference.values
        return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan

    def z(self, prediction: Prediction) -> float:
        """(reference mean − predicted mean) / √(se_pred² + reference SD² / n)."""
        sd = self.reference_sd if math.isfinite(self.reference_sd) else prediction.seed_sd
        se = math.sqrt(prediction.se_pred**2 + sd**2 / self.reference.n)
        return (self.reference_mean - prediction.predicted_acc) / se if se > 0 else math.nan

    def z_by_law(self) -> dict:
        return {name: self.z(p) for name, p in self.predictions().items()}


def predict_reference(reference: Reference, fit: FitResult, sizes: WidthSizes, study_frame: pd.DataFrame, *,
                      study: str = "", provisional: bool = False, others: tuple = (), why_law: str = "") -> ReferenceCheck:
    """Predict the reference's cell from `fit` (and every law in `others`), if the study ran the reference's recipe:
    a study on a subset of the data, or with another hyperparameter, says nothing about the reference's cell."""
    differences = recipe_differences(reference, study_frame)
    if differences:
        return ReferenceCheck(reference, None, reason=f"the study's runs differ from the reference's recipe in "
                              f"{'; '.join(differences)}, so its laws say nothing about the reference's cell")
    alternatives = tuple(_alternative(other, sizes, reference.width, reference.epochs, study, provisional)
                         for other in others if other.name != fit.name)
    try:
        prediction = predict_cell(fit, sizes, reference.width, reference.epochs, study=study, provisional=provisional)
    except AnalysisError as exc:
        return ReferenceCheck(reference, None, alternatives, why_law, f"no prediction: {exc}")
    return ReferenceCheck(reference, prediction, alternatives, why_law)


def recipe_differences(reference: Reference, study_frame: pd.DataFrame) -> list[str]:
    """'field: study's values (reference: value)' for every recipe field the study's ok runs do not share with the
    reference; a reference file that states no recipe is one difference (nothing can be said to match it)."""
    if not reference.recipe:
        return [f"the reference file {reference.name} states no recipe to match the runs against"]
    ok = study_frame[study_frame["status"] == "ok"] if "status" in study_frame else study_frame
    out = []
    for key, want in reference.recipe.items():
        column = key if key in ok else f"config.{key}"
        if column not in ok:
            out.append(f"{key}: not in the records (reference: {_setting(want)})")
            continue
        values = {_setting(v) for v in ok[column] if not _same(v, want)}
        if values:
            out.append(f"{key}: {', '.join(sorted(values))} (reference: {_setting(want)})")
    return out


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _setting(value) -> str:
    return "none" if _missing(value) else str(value)


def _same(value, want) -> bool:
    if _missing(value) or _missing(want):
        return _missing(value) and _missing(want)
    if isinstance(want, bool) or isinstance(value, (bool, np.bool_)):
        return str(value).lower() == str(want).lower()
    if isinstance(want, (int, float)):
        try:
            return math.isclose(float(value), float(want), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return str(value) == str(want)


def _alternative(fit: FitResult, sizes: WidthSizes, width: int, epochs: int, study: str, provisional: bool) -> tuple:
    try:
        return fit.name, predict_cell(fit, sizes, width, epochs, study=study, provisional=provisional)
    except AnalysisError as exc:
        return fit.name, NotComputed(str(exc))


def _identity(study_frame: pd.DataFrame) -> dict:
    """{column: the study's values as text} for every column that fixes what a run is (see module docstring)."""
    columns = [c for c in study_frame.attrs.get("config_columns", ()) if c not in _NOT_IDENTITY]
    columns += [c for c in ("precision",) if c in study_frame]
    ok = study_frame[study_frame["status"] == "ok"] if "status" in study_frame else study_frame
    return {c: {_text(v) for v in ok[c]} for c in columns if c in ok}


def combined_z(rows: pd.DataFrame, prediction: Prediction) -> tuple[float, int]:
    """z of the rows' mean accuracy against the prediction, and n: √(se_pred² + seed_sd²/n) in the denominator."""
    n = len(rows)
    if not n:
        return math.nan, 0
    se = math.sqrt(prediction.se_pred**2 + prediction.seed_sd**2 / n)
    mean = float(np.mean(rows[METRIC]))
    return ((mean - prediction.predicted_acc) / se if se > 0 else math.nan), n


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value)
