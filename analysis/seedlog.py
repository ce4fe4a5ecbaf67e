"""The seed's own console output, read back: what hlb-CIFAR10 v0.3.0's `main.py` prints for its runs, turned into
a reference sample that `compare` can test our runs against (the side-by-side of a GPU session).

The table is read by common.seedtable (the GPU proof reads it with the same parser); this module adds what a
reference sample needs: at least one complete run, one epoch count, the final values present, and the seed's own
closing mean agreeing with the runs read.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from common.seedtable import SeedRun, SeedTableError, parse_seed_table

from .errors import AnalysisError
from .reference import load_reference

__all__ = ["SeedRun", "SeedLog", "parse_seed_log", "read_seed_log", "seed_reference"]


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
    try:
        table = parse_seed_table(text, source)
    except SeedTableError as exc:
        raise AnalysisError(str(exc)) from None
    runs, incomplete, stated = list(table.runs), table.incomplete, table.stated_mean
    for run in runs:
        missing = [name for name, value in (("ema_val_acc", run.ema_val_acc), ("val_acc", run.val_acc),
                                            ("total_time_seconds", run.train_time_s)) if value is None]
        if missing:  # the seed prints epochs from 0: a run's last row is epoch `epochs - 1`
            raise AnalysisError(f"{source}: a run's last row (epoch {run.epochs - 1}) lacks {', '.join(missing)}")
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


def _std(values: list[float]) -> float | None:
    """Sample std (ddof=1, as `compare` uses); None for a single run, which has none."""
    return statistics.stdev(values) if len(values) >= 2 else None
