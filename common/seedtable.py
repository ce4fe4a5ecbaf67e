"""The seed's per-epoch table (hlb-CIFAR10 v0.3.0 main.py), read back from its console output.

The seed prints `|  epoch  |  train_loss  | ... |  total_time_seconds  |` rows — epochs from 0, numbers to 4
decimals, blank cells for values it does not have yet (ema_val_acc before the EMA starts) — closes each run's
table with a dashed line, and ends with `Mean and variance: (mean, var)` over its runs. A run counts once its
closing line has been printed; a run cut off mid-table (a killed process) is counted, not kept. Read by analysis
(`analysis seedlog`, a reference sample for `compare`) and by the GPU proof (speedrun's verify), so one parser.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["COLUMNS", "SeedRun", "SeedTable", "SeedTableError", "parse_seed_table", "table_cells"]

COLUMNS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "ema_val_acc", "total_time_seconds")
_SUMMARY = re.compile(r"^Mean and variance:\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)\s*$")


class SeedTableError(ValueError):
    """The output holds a table the parser cannot read (other columns, a row it cannot parse)."""


@dataclass(frozen=True)
class SeedRun:
    epochs: int  # table rows printed for the run
    ema_val_acc: float | None  # final row's EMA test accuracy, a fraction (None where the cell was blank)
    val_acc: float | None
    train_time_s: float | None  # the final row's total_time_seconds: training only, CUDA-event timed


@dataclass(frozen=True)
class SeedTable:
    runs: tuple[SeedRun, ...]  # every run whose closing line was printed
    incomplete: int  # runs cut off: a new table began, or the output ended, before the closing line
    rows_cut_off: int  # rows of the run left unfinished at the end of the output (0: none)
    stated_mean: float | None  # from the closing "Mean and variance" line, when printed


def table_cells(line: str) -> list[str] | None:
    """The stripped cells of a `|  a  |  b  |` line; None for any other line."""
    text = line.strip()
    if not (text.startswith("|") and text.endswith("|")):
        return None
    return [c.strip() for c in text[1:-1].split("|")]


def parse_seed_table(text: str, source: str = "the log") -> SeedTable:
    """Every run of the seed's table in `text`. Raises SeedTableError (naming `source`) for a header with other
    columns or a row that does not parse; lines outside the table are ignored."""
    runs: list[SeedRun] = []
    rows: list[dict] = []  # the current run's rows
    incomplete, stated = 0, None
    for line in text.splitlines():
        line = line.strip()
        summary = _SUMMARY.match(line)
        if summary:
            stated = float(summary.group(1))
            continue
        if line and set(line) == {"-"}:  # a bar: closes the run whose rows precede it (or frames the header)
            if rows:
                last = rows[-1]
                runs.append(SeedRun(len(rows), last["ema_val_acc"], last["val_acc"], last["total_time_seconds"]))
                rows = []
            continue
        cells = table_cells(line)
        if cells is None:
            continue
        if cells[0] == "epoch":  # the header, printed once
            if tuple(cells) != COLUMNS:
                raise SeedTableError(f"{source}: unexpected table columns {cells}; expected the v0.3.0 seed's "
                                     f"{', '.join(COLUMNS)}")
            continue
        row = _row(cells, line, source)
        if rows and row["epoch"] <= rows[-1]["epoch"]:  # a new run began without the previous one closing
            incomplete += 1
            rows = []
        rows.append(row)
    return SeedTable(tuple(runs), incomplete + bool(rows), len(rows), stated)


def _row(cells: list[str], line: str, source: str) -> dict:
    if len(cells) != len(COLUMNS):
        raise SeedTableError(f"{source}: a table row with {len(cells)} cells, expected {len(COLUMNS)}: {line!r}")
    try:
        return {name: (int(cell) if name == "epoch" else float(cell)) if cell else None
                for name, cell in zip(COLUMNS, cells)}
    except ValueError:
        raise SeedTableError(f"{source}: cannot read the table row {line!r}") from None
