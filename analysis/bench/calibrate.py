"""Calibration benchmark: do the fits' 95% intervals cover the truth 95% of the time?

Draws synthetic grids shaped like the `scaling` study (widths 64-128 × epochs 10-80 × 7 seeds) from a known
separable law with Gaussian seed noise (SD 0.14 accuracy points, as the published runs scatter), fits each the
way `analysis report` does, and counts how often the 95% interval of the predicted mean at width 128 × 80
epochs covers the true value — with the separable law (the true form) and with the law the CV rule chooses —
and how well the exponents are recovered. Interval endpoints are also recomputed from the first 100 and 200
draws of each bootstrap, to show what the number of draws changes.

`python -m analysis calibrate --grids 100 --out results/benchmarks/calibration` writes calibration.json and
calibration.md there. Synthetic; never a measurement of training.
"""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..cells import cell_table
from ..fits import fit_cells
from ..selection import choose_law

__all__ = ["TRUTH", "simulate_grid", "calibrate", "Calibration"]

# The true law, in error = e_inf + A·N^(−alpha) + B·E^(−beta): chosen so that width 64 × 10 epochs scores 94.0%
# and width 128 × 80 epochs 95.74% (the recipe's and the published corner's accuracies).
TRUTH = {"e_inf": 0.030, "A": 57.1, "alpha": 0.5, "B": 0.0487, "beta": 0.8}
WIDTHS, EPOCHS, SEEDS, SEED_SD = (64, 80, 96, 112, 128), (10, 20, 40, 80), 7, 0.0014
TARGET = (128, 80)


def num_params(width):
    """The network's exact parameter count at widths that are multiples of 8 (see sizes.py)."""
    return 1601.5 * width**2 + 165.625 * width + 144


def true_error(width, epochs) -> float:
    return TRUTH["e_inf"] + TRUTH["A"] * num_params(width) ** -TRUTH["alpha"] + TRUTH["B"] * epochs ** -TRUTH["beta"]


def simulate_grid(rng: np.random.Generator, seed_sd: float = SEED_SD) -> pd.DataFrame:
    rows = [{"width": w, "epochs": e, "seed": s, "status": "ok", "num_params": num_params(w),
             "ema_val_acc": 1.0 - true_error(w, e) + rng.normal(0.0, seed_sd)}
            for w in WIDTHS for e in EPOCHS for s in range(SEEDS)]
    return pd.DataFrame(rows)


@dataclass
class Calibration:
    n_grids: int
    n_boot: int
    boot_from: str
    seconds: float = 0.0
    covered: dict = field(default_factory=dict)  # "separable@100" etc. → list of bool
    z: list = field(default_factory=list)  # (predicted − truth) / se_pred, separable law
    exponents: dict = field(default_factory=lambda: {"alpha": [], "beta": []})  # (estimate, low, high)
    flagged: dict = field(default_factory=dict)  # parameter → grids where it was not identified
    chosen: dict = field(default_factory=dict)  # law → grids where the CV rule chose it
    fit_seconds: list = field(default_factory=list)

    def summary(self) -> dict:
        out = {"n_grids": self.n_grids, "n_boot": self.n_boot, "boot_from": self.boot_from,
               "seconds": round(self.seconds, 1), "target_cell": {"width": TARGET[0], "epochs": TARGET[1]},
               "truth": TRUTH, "true_acc_at_target": 1.0 - true_error(*TARGET), "seed_sd": SEED_SD,
               "grid": {"widths": WIDTHS, "epochs": EPOCHS, "seeds": SEEDS}, "coverage": {}}
        for key, hits in self.covered.items():
            k, n = int(np.sum(hits)), len(hits)
            out["coverage"][key] = {"covered": k, "of": n, "rate": k / n, "wilson95": _wilson(k, n)}
        z = np.array(self.z)
        out["z_separable"] = {"mean": float(z.mean()), "sd": float(z.std(ddof=1)), "share_abs_le_1.96":
                              float(np.mean(np.abs(z) <= 1.959964))}
        for name, rows in self.exponents.items():
            est, low, high = np.array(rows).T
            truth = TRUTH[name]
            out[name] = {"truth": truth, "median_estimate": float(np.median(est)), "bias": float(est.mean() - truth),
                         "rmse": float(np.sqrt(np.mean((est - truth) ** 2))),
                         "interval_coverage": float(np.mean((low <= truth) & (truth <= high))),
                         "median_interval_width": float(np.median(high - low))}
        out["not_identified_grids"] = self.flagged
        out["chosen_law"] = self.chosen
        out["seconds_per_grid_separable_fit"] = float(np.median(self.fit_seconds))
        return out


def calibrate(n_grids: int = 100, n_boot: int = 400, seed: int = 2024, boot_from: str = "point",
              select: bool = True, progress=None) -> Calibration:
    """Run the benchmark; `progress(k)` is called after each grid."""
    rng = np.random.default_rng(seed)
    result = Calibration(n_grids, n_boot, boot_from)
    truth_acc = 1.0 - true_error(*TARGET)
    subsets = sorted({b for b in (100, 200, n_boot) if b <= n_boot})
    started = time.perf_counter()
    for k in range(n_grids):
        cells = cell_table(simulate_grid(rng))
        t0 = time.perf_counter()
        fit = fit_cells(cells, "separable", n_boot=n_boot, seed=k, boot_from=boot_from)
        result.fit_seconds.append(time.perf_counter() - t0)
        point, draws = fit.predict_error(num_params(TARGET[0]), TARGET[1], TARGET[0])
        acc, acc_draws = 1.0 - point[0], 1.0 - draws[:, 0]
        for b in subsets:
            low, high = np.percentile(acc_draws[:b], [2.5, 97.5])
            result.covered.setdefault(f"separable, {b} draws", []).append(bool(low <= truth_acc <= high))
        result.z.append(float((acc - truth_acc) / np.std(acc_draws, ddof=1)))
        for name in ("alpha", "beta"):
            result.exponents[name].append((fit.params[name], *fit.intervals[name]))
        for name in fit.not_identified:
            result.flagged[name] = result.flagged.get(name, 0) + 1
        if select:
            choice = choose_law(cells, n_boot=n_boot, seed=k, boot_from=boot_from)
            result.chosen[choice.chosen] = result.chosen.get(choice.chosen, 0) + 1
            chosen = choice.fit
            if chosen is not None:
                p, d = chosen.predict_error(num_params(TARGET[0]), TARGET[1], TARGET[0])
                low, high = np.percentile(1.0 - d[:, 0], [2.5, 97.5])
                result.covered.setdefault(f"law chosen by CV, {n_boot} draws", []).append(bool(low <= truth_acc <= high))
        if progress:
            progress(k + 1)
    result.seconds = time.perf_counter() - started
    return result


def write_calibration(result: Calibration, out_dir, command: str) -> tuple:
    """calibration.json and calibration.md in `out_dir`; returns their paths."""
    from ..writer import write_atomic  # noqa: PLC0415 - the benchmark's own writer, kept out of import time

    summary = result.summary()
    summary["command"] = command
    summary["machine"] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                          "cpus": os.cpu_count(), "load_average_at_end": _load()}
    summary["code"] = _git_state()
    json_path = write_atomic(os.path.join(out_dir, "calibration.json"), json.dumps(summary, indent=1) + "\n")
    code = summary["code"]
    lines = [f"# Calibration of the analysis's intervals ({result.n_grids} synthetic `scaling`-shaped grids)", "",
             f"Command: `{command}` (code: commit {code['commit']}{', with uncommitted changes to analysis/' if code['dirty'] else ''})", "",
             f"Synthetic grids (not measurements): widths {WIDTHS} × epochs {EPOCHS} × {SEEDS} seeds, Gaussian seed "
             f"noise SD {100 * SEED_SD:.2f} points, from error = e_inf + A·N^(−alpha) + B·E^(−beta) with {TRUTH}. "
             f"Target: the 95% interval of the predicted mean accuracy at width {TARGET[0]} × {TARGET[1]} epochs "
             f"(true value {100 * summary['true_acc_at_target']:.3f}%). Bootstrap: {result.n_boot} draws refitted "
             f"from the {'point estimate' if result.boot_from == 'point' else 'full start grid'}.", "",
             "| interval | covered | rate | 95% Wilson interval of the rate |", "|---|---|---|---|"]
    for key, c in summary["coverage"].items():
        lo, hi = c["wilson95"]
        lines.append(f"| {key} | {c['covered']} / {c['of']} | {100 * c['rate']:.1f}% | [{100 * lo:.1f}%, {100 * hi:.1f}%] |")
    lines += ["", "| exponent | truth | median estimate | bias | RMSE | 95% interval covers truth | median interval width |",
              "|---|---|---|---|---|---|---|"]
    for name in ("alpha", "beta"):
        e = summary[name]
        lines.append(f"| {name} | {e['truth']} | {e['median_estimate']:.4f} | {e['bias']:+.4f} | {e['rmse']:.4f} | "
                     f"{100 * e['interval_coverage']:.1f}% | {e['median_interval_width']:.4f} |")
    z = summary["z_separable"]
    lines += ["", f"z = (predicted − truth) / se_pred at the target (separable law): mean {z['mean']:+.3f}, SD "
                  f"{z['sd']:.3f}, |z| ≤ 1.96 in {100 * z['share_abs_le_1.96']:.1f}% of grids.",
              (f"Law chosen by leave-one-cell-out CV (one-SE rule): {summary['chosen_law']}." if summary["chosen_law"]
               else "The law choice was not run (--no-select)."),
              f"Parameters flagged not identified (grids): {summary['not_identified_grids'] or 'none'}.",
              f"Time: {summary['seconds']:.0f} s in all; a separable fit with its bootstrap takes "
              f"{summary['seconds_per_grid_separable_fit']:.2f} s (median) on {summary['machine']['processor']}, "
              f"{summary['machine']['cpus']} CPUs, load average {summary['machine']['load_average_at_end']} at the end.",
              ""]
    md_path = write_atomic(os.path.join(out_dir, "calibration.md"), "\n".join(lines))
    return json_path, md_path


def _wilson(k: int, n: int) -> list:
    z = stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


def _git_state() -> dict:
    """The commit of the analysis code that ran (and whether analysis/ had uncommitted changes), if in a checkout."""
    here = Path(__file__).resolve().parents[1]  # analysis/, not only bench/
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(here)], cwd=here, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit or "unknown", "dirty": bool(dirty) if commit else None}


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"
