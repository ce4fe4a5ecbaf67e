"""Run records on disk → one pandas DataFrame, one row per record (the `load` stage).

The record layout is documented in results/README.md, the only contract with the code that writes records.
Config fields become columns under their own names (`width`, `epochs`, `seed`, ...); nested top-level objects
are flattened with a dot (`versions.torch`); `history` stays as an object column. Two config fields share a
name with a top-level field holding the *resolved* value (`device`, `precision`): the top-level value keeps the
name and the config value (possibly "auto") becomes `config.device` / `config.precision`.

`flops_per_epoch` (training FLOPs of one epoch) is read from the record when it carries the field; older
records lack it (every record committed before it was added) and get train_flops / epochs, which is exact:
speedrun computes train_flops as 3 × forward FLOPs × images × epochs. This is the one place that derives it.

Statuses: "ok" (a result), "failed" (an error, no result) and "diverged" (training stopped at the first epoch
with a non-finite loss; `error` says where). Only ok records are results; the others are counted and listed.
"""
from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.record import EXECUTION_FIELDS, METRIC, SCHEMA_VERSION, STATUSES

from .errors import AnalysisError, NoRecordsError, RecordWarning

__all__ = ["load", "load_quietly", "LoadResult", "SCHEMA_VERSION", "EXECUTION_FIELDS", "METRIC", "STATUSES", "REPORT_JSON"]

# SCHEMA_VERSION (the record layout this reader is written for), METRIC (the headline), STATUSES and
# EXECUTION_FIELDS (config fields that cannot change a result, so they never define a grid cell) are
# common.record's: the trainer writes records with the same ones.
# What `analysis report` writes beside the records (report/report_json.py): a study folder's JSON that is not a
# record.
REPORT_JSON = "report.json"
_FIRST_COLUMNS = ("run_id", "study", "status", "width", "epochs", "seed", METRIC, "val_acc", "train_time_s",
                  "train_flops", "num_params")


@dataclass
class LoadResult:
    """What `load` found: the frame plus an account of every file that did not become an ok row."""

    frame: pd.DataFrame  # one row per record (ok only, unless include_failed=True)
    directory: Path
    n_files: int  # *.json files seen
    n_ok: int  # records with status "ok"
    n_failed: int  # records with status "failed" (in the frame only with include_failed=True)
    n_diverged: int = 0  # records with status "diverged" (likewise)
    corrupt: list[Path] = field(default_factory=list)  # unreadable JSON, skipped
    incompatible: list[tuple[Path, str]] = field(default_factory=list)  # valid JSON but not a usable record
    duplicates: list[Path] = field(default_factory=list)  # second copies of a run_id, skipped
    failures: list[tuple[str, str]] = field(default_factory=list)  # (run_id, error) of failed records
    divergences: list[tuple[str, str]] = field(default_factory=list)  # (run_id, error) of diverged records
    schema_versions: dict = field(default_factory=dict)  # schema_version → number of records
    config_columns: tuple[str, ...] = ()  # frame columns that came from `config`

    @property
    def n_skipped(self) -> int:
        return len(self.corrupt) + len(self.incompatible) + len(self.duplicates)

    def summary(self) -> str:
        """One line: '12 ok, 1 failed, 0 diverged, 1 corrupt, 0 incompatible, 0 duplicate (14 files)'."""
        return (f"{self.n_ok} ok, {self.n_failed} failed, {self.n_diverged} diverged, {len(self.corrupt)} corrupt, "
                f"{len(self.incompatible)} incompatible, {len(self.duplicates)} duplicate ({self.n_files} files)")


def load(directory: str | Path, *, include_failed: bool = False) -> LoadResult:
    """Read every `*.json` run record under `directory` (recursively) into `LoadResult.frame`.

    Failed and diverged runs are left out of the frame (and counted) unless `include_failed`. A corrupt or
    unusable file is named in a `RecordWarning` and skipped. Raises `AnalysisError` if the folder is missing and
    `NoRecordsError` if it holds no JSON files, or no valid record among them (saying how many were skipped).
    Records may sit anywhere below `directory` (a study's runs/, or *.json directly in the folder).
    """
    root = Path(directory)
    if not root.exists():
        raise AnalysisError(f"{root} does not exist; pass a folder of run records such as results/<study>")
    if not root.is_dir():
        raise AnalysisError(f"{root} is not a folder; pass a folder of run records such as results/<study>")
    paths = sorted(p for p in root.rglob("*.json") if not p.name.startswith(".") and p.name != REPORT_JSON)
    if not paths:
        raise NoRecordsError(f"no run records (*.json) under {root}; run a study first (python -m studies run ...)")

    result = LoadResult(frame=pd.DataFrame(), directory=root, n_files=len(paths), n_ok=0, n_failed=0)
    rows: list[dict] = []
    versions: Counter = Counter()
    config_columns: dict[str, None] = {}
    for path in paths:
        record = _read(path, result)
        if record is None:
            continue
        versions[record.get("schema_version")] += 1
        row, cfg_cols = _flatten(record)
        row["record_path"] = str(path.relative_to(root))
        config_columns.update(dict.fromkeys(cfg_cols))
        rows.append(row)

    if not rows:
        skipped = [f"{len(result.corrupt)} corrupt"] + ([f"{len(result.incompatible)} incompatible"]
                                                        if result.incompatible else [])
        raise NoRecordsError(f"no valid run records found under {root}: {' and '.join(skipped)} of {len(paths)} "
                             f"*.json files skipped (see results/README.md for the record layout)")
    rows = _drop_duplicates(rows, root, result)
    for row in rows:
        if row["status"] == "ok":
            result.n_ok += 1
        elif row["status"] == "diverged":
            result.n_diverged += 1
            result.divergences.append((str(row.get("run_id")), str(row.get("error"))))
        else:
            result.n_failed += 1
            result.failures.append((str(row.get("run_id")), str(row.get("error"))))
    kept = [r for r in rows if include_failed or r["status"] == "ok"]
    result.schema_versions = dict(versions)
    result.config_columns = tuple(config_columns)
    result.frame = _to_frame(kept)
    result.frame.attrs["config_columns"] = result.config_columns  # lets aggregate() find the grid's knobs
    _warn_other_versions(versions)
    return result


def load_quietly(directory: str | Path) -> pd.DataFrame:
    """The ok records of a folder beside the one being analysed (a check's, an equivalence entry's), without
    warnings for files it skips: those belong to that folder's own report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(directory).frame


def _read(path: Path, result: LoadResult) -> dict | None:
    """The record in `path`, or None (and a warning) if it cannot be used."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.corrupt.append(path)
        warnings.warn(f"skipping corrupt record {path}: {type(exc).__name__}: {exc}", RecordWarning, stacklevel=3)
        return None
    problem = _problem(record)
    if problem:
        result.incompatible.append((path, problem))
        warnings.warn(f"skipping {path}: {problem}", RecordWarning, stacklevel=3)
        return None
    return record


def _problem(record) -> str | None:
    """Why `record` cannot be used as a run record (None if it can)."""
    if not isinstance(record, dict):
        return f"not a run record (a JSON {type(record).__name__}, expected an object)"
    if "status" not in record and "config" not in record:
        return "not a run record (no `status` or `config` field; see results/README.md)"
    config = record.get("config")
    if not isinstance(config, dict) or not {"width", "epochs"} <= set(config):
        version = record.get("schema_version")
        return (f"schema_version {version!r}: `config` with `width` and `epochs` is missing; this reader knows "
                f"schema {SCHEMA_VERSION} (results/README.md)")
    status = record.get("status")
    if status not in STATUSES:
        return f"status {status!r} is not one of {', '.join(map(repr, STATUSES))}"
    if status == "ok":
        value = record.get(METRIC)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return f"status 'ok' but {METRIC}={value!r} is not a number"
        if not 0.0 <= value <= 1.0:
            return (f"{METRIC}={value!r} is not a fraction in [0, 1] (results/README.md); "
                    "a percent value must be divided by 100 by the code that wrote it")
    return None


def _flatten(record: dict) -> tuple[dict, list[str]]:
    row: dict = {}
    for key, value in record.items():
        if key == "config":
            continue
        if isinstance(value, dict):
            row.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            row[key] = value
    config_cols = []
    for key, value in record["config"].items():
        name = f"config.{key}" if key in record else key
        row[name] = value
        config_cols.append(name)
    row.setdefault("schema_version", None)
    row["flops_per_epoch"] = _flops_per_epoch(record)
    return row, config_cols


def _flops_per_epoch(record: dict) -> float | None:
    """The record's `flops_per_epoch`, or for records written before it existed train_flops / epochs."""
    value = record.get("flops_per_epoch")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    flops, epochs = record.get("train_flops"), record["config"].get("epochs")
    if isinstance(flops, (int, float)) and isinstance(epochs, (int, float)) and epochs > 0 and math.isfinite(flops):
        return float(flops) / float(epochs)
    return None


def _drop_duplicates(rows: list[dict], root: Path, result: LoadResult) -> list[dict]:
    """One row per run_id (the same run found twice, e.g. in merged folders): prefer ok, then the latest."""
    best: dict[str, dict] = {}
    kept = []
    for row in rows:
        run_id = row.get("run_id")
        if run_id is None:
            kept.append(row)
            continue
        other = best.get(run_id)
        if other is None:
            best[run_id] = row
            continue
        rank = lambda r: (r["status"] == "ok", str(r.get("finished_at") or ""))  # noqa: E731
        loser = min(other, row, key=rank)
        best[run_id] = row if loser is other else other
        result.duplicates.append(root / loser["record_path"])
        warnings.warn(f"skipping {root / loser['record_path']}: duplicate of run_id {run_id} "
                      f"(kept {root / best[run_id]['record_path']})", RecordWarning, stacklevel=3)
    return kept + list(best.values())


def _to_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    first = [c for c in _FIRST_COLUMNS if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    sort = [c for c in ("width", "epochs", "seed") if c in frame.columns]
    return frame.sort_values(sort, kind="stable").reset_index(drop=True) if sort else frame


def _warn_other_versions(versions: Counter) -> None:
    other = {v: n for v, n in versions.items() if v != SCHEMA_VERSION}
    if other:
        listed = ", ".join(f"{n} with schema_version {v!r}" for v, n in other.items())
        warnings.warn(f"read {listed} as schema {SCHEMA_VERSION} (their required fields are present); "
                      "check results/README.md for what changed", RecordWarning, stacklevel=3)
