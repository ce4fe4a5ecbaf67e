"""The seed's per-epoch table (hlb-CIFAR10 main.py at 8959293), read back from its console output.

The seed prints `|  epoch  |  train_loss  | ... |  total_time_seconds  |` rows — epochs from 0, numbers to 4
decimals, blank cells for values it does not have yet (ema_val_acc before the EMA starts) — and closes each run
with a dashed line. A run counts once that line is out; a run cut off mid-table (a killed process) does not.
(analysis.seedlog reads the same format for studies; the proof cannot import analysis, so it has its own.)
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COLUMNS", "SeedRun", "parse_seed_table", "seed_header", "seed_row", "seed_close"]

COLUMNS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "ema_val_acc", "total_time_seconds")


@dataclass(frozen=True)
class SeedRun:
    epochs: int  # rows printed for the run
    ema_val_acc: float | None  # final epoch's EMA accuracy, a fraction
    val_acc: float | None
    train_time_s: float  # total_time_seconds of the final row: training loops only, CUDA-event timed


def _cells(line: str) -> list[str] | None:
    text = line.strip()
    if not (text.startswith("|") and text.endswith("|")):
        return None
    cells = [c.strip() for c in text[1:-1].split("|")]
    return cells if len(cells) == len(COLUMNS) else None


def _number(cell: str) -> float | None:
    return float(cell) if cell else None


def parse_seed_table(text: str) -> tuple[list[SeedRun], int]:
    """(finished runs, rows of a run left unfinished at the end: 0 when none) from the seed's output."""
    runs: list[SeedRun] = []
    rows: list[list[str]] = []
    last_was_row = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and set(stripped) == {"-"}:
            if last_was_row and rows:
                final = rows[-1]
                runs.append(SeedRun(epochs=len(rows), ema_val_acc=_number(final[5]), val_acc=_number(final[4]),
                                    train_time_s=float(final[6])))
                rows = []
            last_was_row = False
            continue
        cells = _cells(line)
        last_was_row = bool(cells) and cells[0].isdigit()
        if last_was_row:
            rows.append(cells)
    return runs, len(rows)


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
