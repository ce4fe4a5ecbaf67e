"""How complete a study's grid is: runs per cell done (ok), failed, diverged and pending, and runs in progress.

The intended grid comes, in order, from a study file given explicitly (`--grid FILE`), else from the built-in
study file of the records' `study` name (studies/grids/<name>.toml in this source tree, used only when every
record lies on its grid), else it is inferred as the cartesian product of the width, epochs and seed values
seen in the records, which cannot know about values no run has reached yet (the report says so). Runs in
progress are the lock files in `<study>/locks/` (see studies/README.md); they name no cell. The study file is
read as TOML (its [grid] and [fixed] tables), never through the studies package, which analysis may not import.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import AnalysisError

__all__ = ["GridStatus", "grid_status", "BUILTIN_GRIDS"]

BUILTIN_GRIDS = Path(__file__).resolve().parents[1] / "studies" / "grids"  # beside the package in a checkout
_KNOBS = ("width", "epochs", "seed")


@dataclass(frozen=True)
class GridStatus:
    source: str  # where the intended grid came from, in words
    inferred: bool
    table: pd.DataFrame  # width, epochs, expected, ok, failed, diverged, pending (one row per cell)
    running: int  # lock files present

    @property
    def totals(self) -> dict:
        return {c: int(self.table[c].sum()) for c in ("expected", "ok", "failed", "diverged", "pending")}

    @property
    def provisional(self) -> bool:
        t = self.totals
        return bool(t["pending"] or t["failed"] or t["diverged"] or self.running)

    def missing(self) -> list[str]:
        """Cells of the grid with no ok run, with why: 'w×e (pending)', 'w×e (2 failed)'."""
        out = []
        for row in self.table[self.table["ok"] == 0].itertuples():
            why = [f"{getattr(row, c)} {c}" for c in ("failed", "diverged") if getattr(row, c)]
            why += ["pending"] if row.pending else []
            out.append(f"{row.width:g}×{row.epochs:g} ({', '.join(why) or 'no runs'})")
        return out


def grid_status(study_dir: str | Path, frame: pd.DataFrame, grid_file: str | Path | None = None) -> GridStatus:
    """The grid status of `study_dir`, whose records (all statuses: load(..., include_failed=True)) are `frame`."""
    study_dir = Path(study_dir)
    seen = frame[[c for c in _KNOBS if c in frame]].drop_duplicates() if len(frame) else pd.DataFrame()
    values, multiplier, source = None, 1, ""
    if grid_file is not None:
        values, multiplier = _read_grid(Path(grid_file), seen)
        source = f"the study file {grid_file}"
    else:
        names = frame["study"].dropna().unique() if "study" in frame else []
        builtin = BUILTIN_GRIDS / f"{names[0]}.toml" if len(names) == 1 else None
        if builtin is not None and builtin.is_file():
            try:
                values, multiplier = _read_grid(builtin, seen)
                source = f"the built-in study file studies/grids/{builtin.name} (study {names[0]!r})"
            except AnalysisError as exc:
                source = f"inferred from the records ({exc})"
    inferred = values is None
    if inferred:
        values = {k: sorted(seen[k].unique()) if k in seen else [None] for k in _KNOBS}
        source = (source or "inferred from the records") + (
            ": the cartesian product of the widths, epochs and seeds seen, so values no run has reached are unknown")
    per_cell = len(values["seed"]) * multiplier
    counts = _counts(frame)
    rows = []
    for width, epochs in itertools.product(values["width"], values["epochs"]):
        got = counts.get((float(width), float(epochs)), {})
        done = sum(got.get(s, 0) for s in ("ok", "failed", "diverged"))
        rows.append({"width": float(width), "epochs": float(epochs), "expected": per_cell, "ok": got.get("ok", 0),
                     "failed": got.get("failed", 0), "diverged": got.get("diverged", 0),
                     "pending": max(0, per_cell - done)})
    locks = study_dir / "locks"
    running = len([p for p in locks.glob("*.lock") if not p.name.startswith(".")]) if locks.is_dir() else 0
    return GridStatus(source, inferred, pd.DataFrame(rows), running)


def _counts(frame: pd.DataFrame) -> dict:
    out: dict = {}
    if not len(frame):
        return out
    for (width, epochs, status), n in frame.groupby(["width", "epochs", "status"]).size().items():
        out.setdefault((float(width), float(epochs)), {})[status] = int(n)
    return out


def _read_grid(path: Path, seen: pd.DataFrame) -> tuple[dict, int]:
    """({width, epochs, seed: values}, runs per (width, epochs, seed) from other grid keys) of a study file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnalysisError(f"study file {path} not found; pass an existing study TOML with --grid") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise AnalysisError(f"study file {path} is not valid TOML ({exc})") from None
    grid, fixed = data.get("grid", {}), data.get("fixed", {})
    if not isinstance(grid, dict) or not isinstance(fixed, dict):
        raise AnalysisError(f"study file {path}: [grid] and [fixed] must be tables")
    values = {}
    for knob in _KNOBS:
        if knob in grid:
            values[knob] = list(grid[knob]) if isinstance(grid[knob], list) else [grid[knob]]
        elif knob in fixed:
            values[knob] = [fixed[knob]]
        elif knob in seen and seen[knob].nunique() == 1:
            values[knob] = [seen[knob].iloc[0]]
        else:
            raise AnalysisError(f"study file {path} gives no {knob} values")
    multiplier = math.prod(len(v) if isinstance(v, list) else 1 for k, v in grid.items() if k not in _KNOBS)
    for knob in _KNOBS:
        if knob in seen:
            stray = sorted(set(seen[knob].dropna()) - set(values[knob]))
            if stray:
                raise AnalysisError(f"{path.name} does not describe these records: {knob} {stray} is not in its grid")
    return values, multiplier
