"""Speed benchmark of `analysis report` on a 140-run grid shaped like the `scaling` study (synthetic records).

`python -m analysis bench-report [--out FILE]` writes the records to a temporary folder, times the whole report
(loading, four laws with cross-validation and bootstrap, held-out checks, allocation, seven figures) and prints
wall and CPU seconds with the machine's load, since a shared machine's load changes the figure.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ..study import DEFAULT_BOOT
from ..testing import make_record, write_records
from ..writer import write_atomic
from .calibrate import SEEDS, WIDTHS, EPOCHS, true_error

__all__ = ["bench_report"]


def bench_report(n_boot: int = DEFAULT_BOOT, n_jobs: int = 1, seed: int = 0) -> dict:
    """Time report() on a synthetic 5 × 4 × 7 grid; returns the figures as a dict."""
    from ..report.build import report  # noqa: PLC0415 - imported here so the timing starts with a warm import

    rng = np.random.default_rng(seed)
    records = [make_record(width=w, epochs=e, seed=s, study="scaling",
                           ema_val_acc=float(1.0 - true_error(w, e) + rng.normal(0.0, 0.0014)))
               for w in WIDTHS for e in EPOCHS for s in range(SEEDS)]
    with tempfile.TemporaryDirectory() as folder:
        write_records(folder, records)
        load_before = _load()
        wall, cpu = time.perf_counter(), time.process_time()
        report(folder, n_boot=n_boot, n_jobs=n_jobs)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"runs": len(records), "n_boot": n_boot, "n_jobs": n_jobs, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "load_average_before": load_before, "load_average_after": _load(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_bench(result: dict, path: str | Path) -> Path:
    return write_atomic(path, json.dumps(result, indent=1) + "\n")


def _load() -> list:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []
