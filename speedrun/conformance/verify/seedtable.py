"""The seed's per-epoch table (hlb-CIFAR10 main.py at 8959293): read back with common.seedtable's parser (the one
analysis's `seedlog` uses too), and written by a stand-in that must read like the seed.

The seed prints `|  epoch  |  train_loss  | ... |  total_time_seconds  |` rows — epochs from 0, numbers to 4
decimals, blank cells for values it does not have yet (ema_val_acc before the EMA starts) — and closes each run
with a dashed line.
"""
from __future__ import annotations

from common.seedtable import COLUMNS, SeedRun, SeedTableError
from common.seedtable import parse_seed_table as _parse

__all__ = ["COLUMNS", "SeedRun", "SeedTableError", "parse_seed_table", "seed_header", "seed_row", "seed_close"]


def parse_seed_table(text: str) -> tuple[list[SeedRun], int]:
    """(finished runs, rows of a run left unfinished at the end: 0 when none) from the seed's output. Raises
    SeedTableError for a table it cannot read."""
    table = _parse(text, source="the seed's output")
    return list(table.runs), table.rows_cut_off


def _line(values: list[str]) -> str:
    return "".join(f"|  {v}  " for v in values) + "|"


def seed_header() -> str:
    """The seed's header, as it prints it (for a stand-in that must read like the seed)."""
    head = _line(list(COLUMNS))
    return "\n".join(("-" * len(head), head, "-" * len(head)))


def seed_row(row: dict) -> str:
    """One table row in the seed's layout from one of our history rows (epoch 1-based -> 0-based)."""
    values = dict(row, epoch=row["epoch"] - 1, total_time_seconds=row["train_time_s"])
    out = []
    for name in COLUMNS:
        v = values.get(name)
        if v is None:
            out.append(" " * len(name))
        elif isinstance(v, int):
            out.append(f"{v}".rjust(len(name)))
        else:
            out.append(f"{v:0.4f}".rjust(len(name)))
    return _line(out)


def seed_close(row_line: str) -> str:
    return "-" * len(row_line)
