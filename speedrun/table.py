"""The per-epoch table as the reference prints it: one header, then one line per epoch. `speedrun train`
prints it and the studies' per-run logs hold it, so a log reads like a console."""
from __future__ import annotations

from common.seedtable import COLUMNS

__all__ = ["EPOCH_COLUMNS", "epoch_header", "epoch_line"]

# The reference's column names (common.seedtable reads them back); total_time_seconds is the record's train_time_s
# (cumulative training time).
EPOCH_COLUMNS = COLUMNS
_ROW_KEY = {"total_time_seconds": "train_time_s"}
_WIDTH = 12


def epoch_header() -> str:
    return " | ".join(f"{c:>{_WIDTH}s}" for c in EPOCH_COLUMNS)


def epoch_line(row: dict) -> str:
    """One history row: integers as they are, numbers to 4 decimals, blank where a value is absent (an epoch
    that was not evaluated); a non-finite loss shows as nan or inf."""
    cells = []
    for column in EPOCH_COLUMNS:
        value = row.get(_ROW_KEY.get(column, column))
        if value is None:
            cells.append(" " * _WIDTH)
        elif isinstance(value, int) and not isinstance(value, bool):
            cells.append(f"{value:>{_WIDTH}d}")
        else:
            cells.append(f"{value:>{_WIDTH}.4f}")
    return " | ".join(cells)
