"""The seed's own console output, read back: what hlb-CIFAR10 v0.3.0's `main.py` prints for its runs, turned into
a reference sample that `compare` can test our runs against (the side-by-side of a GPU session).

The seed prints one table row per epoch — `|  epoch  |  train_loss  | ... |  total_time_seconds  |` with epochs
counted from 0 and ema_val_acc blank before the EMA starts — closes each run's table with a dashed line, and
ends with `Mean and variance: (mean, var)` over its runs. A run counts once its closing line has been printed;
a run cut off mid-table (a killed process) is left out and counted.
"""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from .errors import AnalysisError
from .reference import load_reference

__all__ = ["SeedRun", "SeedLog", "parse_seed_log", "read_seed_log", "seed_reference"]

_COLUMNS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "ema_val_acc", "total_time_seconds")
_SUMMARY = re.compile(r"^Mean and variance:\s*\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\)\s*$")


@dataclass(frozen=True)
class SeedRun:
    epochs: int  # table rows printed for the run
    ema_val_acc: float  # final EMA test accuracy, a fraction
    val_acc: float
    train_time_s: float  # the seed's total_time_seconds: training only, CUDA-event timed


@dataclass(frozen=True)
class SeedLog:
    runs: tuple[SeedRun, ...]
    incomplete: int  # runs whose table was cut off
    stated_mean: float | None  # from the closing "Mean and variance" line, when printed


def read_seed_log(path: str | Path) -> SeedLog:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AnalysisError(f"cannot read the seed's log {path}: {exc.strerror or exc}") from None
    return parse_seed_log(text, source=str(path))


def parse_seed_log(text: str, source: str = "the log") -> SeedLog:
    """Every complete run in the seed's output; raises AnalysisError when there is none, when the runs disagree
    on their epoch count, or when the seed's own closing mean disagrees with the runs read."""
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
                runs.append(_finish(rows, source))
                rows = []
            continue
        cells = _cells(line)
        if cells is None:
            continue
        if cells[0] == "epoch":  # the header, printed once
            if tuple(cells) != _COLUMNS:
                raise AnalysisError(f"{source}: unexpected table columns {cells}; expected the v0.3.0 seed's "
                                    f"{', '.join(_COLUMNS)}")
            continue
        row = _row(cells, line, source)
        if rows and row["epoch"] <= rows[-1]["epoch"]:  # a new run began without the previous one closing
            incomplete += 1
            rows = []
        rows.append(row)
    incomplete += bool(rows)
    if not runs:
        raise AnalysisError(f"{source}: no complete run of the seed's table found ({incomplete} cut off); pass the "
                            "console output of hlb-CIFAR10's main.py")
    lengths = sorted({r.epochs for r in runs})
    if len(lengths) > 1:
        raise AnalysisError(f"{source}: runs of different lengths ({', '.join(map(str, lengths))} epochs); "
                            "one log must hold one configuration")
    if stated is not None and incomplete == 0:
        mean = statistics.fmean(r.ema_val_acc for r in runs)
        if abs(mean - stated) > 1e-4:
            raise AnalysisError(f"{source}: the seed's closing mean {stated:.6f} is not the mean of the {len(runs)} "
                                f"runs read ({mean:.6f}); the log is mangled or mixes several outputs")
    return SeedLog(tuple(runs), incomplete, stated)


def seed_reference(log: SeedLog, *, width: int, epochs: int, hardware: str, command: str, source: str,
                   name: str | None = None) -> dict:
    """A reference file (the shape `load_reference` reads) for the seed's runs as measured here."""
    if log.runs[0].epochs != epochs:
        raise AnalysisError(f"the log's runs have {log.runs[0].epochs} epochs, not --epochs {epochs}")
    acc = [r.ema_val_acc for r in log.runs]
    times = [r.train_time_s for r in log.runs]
    return {
        "name": name or f"hlb-cifar10-v0.3.0-w{width}-e{epochs}-measured",
        "kind": "measured_reference",
        "note": "The seed's own code (hlb-CIFAR10 main.py), run by us and read back from its console output by "
                "`python -m analysis seedlog`; NOT our trainer and NOT a run record.",
        "source": source,
        "command": command,
        "config": {"width": width, "epochs": epochs},
        "metric": "ema_val_acc",
        "metric_meaning": "final EMA-network test accuracy (CIFAR-10 test set, 10,000 images, flip TTA)",
        "units": "fraction",
        "hardware": hardware,
        "values": acc,
        "n": len(acc),
        "mean": statistics.fmean(acc),
        "std": _std(acc),
        "train_time_s": times,
        "train_time_s_mean": statistics.fmean(times),
        "train_time_s_std": _std(times),
        "incomplete_runs": log.incomplete,
        "recipe": _seed_recipe(),
    }


def _seed_recipe() -> dict:
    """The seed's main.py runs the v0.3.0 recipe (only its width and epochs are set by hand), which the published
    reference file states; {} where that file is not at hand (then no study is matched to these values)."""
    try:
        return dict(load_reference().recipe)
    except AnalysisError:
        return {}


def _cells(line: str) -> list[str] | None:
    if not (line.startswith("|") and line.endswith("|")):
        return None
    return [c.strip() for c in line[1:-1].split("|")]


def _row(cells: list[str], line: str, source: str) -> dict:
    if len(cells) != len(_COLUMNS):
        raise AnalysisError(f"{source}: a table row with {len(cells)} cells, expected {len(_COLUMNS)}: {line!r}")
    try:
        return {name: (int(cell) if name == "epoch" else float(cell)) if cell else None
                for name, cell in zip(_COLUMNS, cells)}
    except ValueError:
        raise AnalysisError(f"{source}: cannot read the table row {line!r}") from None


def _finish(rows: list[dict], source: str) -> SeedRun:
    last = rows[-1]
    missing = [c for c in ("ema_val_acc", "val_acc", "total_time_seconds") if last[c] is None]
    if missing:
        raise AnalysisError(f"{source}: a run's last row (epoch {last['epoch']}) lacks {', '.join(missing)}")
    return SeedRun(epochs=len(rows), ema_val_acc=last["ema_val_acc"], val_acc=last["val_acc"],
                   train_time_s=last["total_time_seconds"])


def _std(values: list[float]) -> float | None:
    """Sample std (ddof=1, as `compare` uses); None for a single run, which has none."""
    return statistics.stdev(values) if len(values) >= 2 else None
