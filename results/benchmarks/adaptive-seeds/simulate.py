"""Adaptive seeds against the even grid, in simulation: how many runs (and FLOPs) does `studies run --adaptive`
spend to bring every cell's standard error to a target, compared with the even grid that meets the same target?

Synthetic records are drawn from a known law with seed noise; the decisions are the real ones
(`studies.adaptive.decide`, the code `--adaptive` runs). Nothing here trains a network.

    PYTHONPATH=. python results/benchmarks/adaptive-seeds/simulate.py            # writes se-target.json, .png
    PYTHONPATH=. python results/benchmarks/adaptive-seeds/simulate.py --grid cpu-scaling   # se-target-cpu-scaling.*
    PYTHONPATH=. python results/benchmarks/adaptive-seeds/simulate.py --target law \\
        --predictor "python -m analysis predict" --replicates 3                 # the law-interval target

Grid "scaling" is that study's (width 64-128 x epochs 10-80). Its law passes through the two published cell
means (width 64 x 10 epochs: 93.97%, an independent A100 measurement; width 128 x 80: 95.744%, the seed's release
notes); its exponents (1.0 in width, 0.8 in epochs) are assumptions. Seed noise: scenario "flat" uses 0.14
points in every cell (the sample sd of the seven published width-128 x 80 runs; 0.12 was measured at width
64 x 10); scenario "epochs" lets it fall with training length, 0.25 points at 10 epochs to 0.08 at 80 (an
assumption, to show what uneven noise does); scenario "proportional" makes it 2.48% of the cell's error, the
relative sd measured on cpu-scaling. Grid "cpu-scaling" is that study's 12 cells (widths 8-32 x epochs 3-20),
their measured means taken as the truth, with its seed noise as measured: 2.48% of the error ("proportional",
0.15-0.66 points), or its pooled 0.46 points everywhere ("flat").

Every scenario runs the policy three times on the same draws: with noise = "auto" (the default: each round pools
the cells' sd relative to their errors or in points, whichever their spread favours), and with each model fixed
("proportional", "constant").

The even grid is given the benefit of hindsight: the smallest seeds-per-cell n for which every cell's estimated
standard error (the same estimate the policy uses, on the same draws) is at the target. "Met" counts cells whose
true standard error (the scenario's sd / sqrt(n)) is at the target.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import speedrun
from studies.adaptive import NOISE_MODELS, PRIOR_DF, CellState, decide, shrunk_sds
from studies.spec import Adaptive

HERE = Path(__file__).resolve().parent
REL_SD = 0.0248  # one run's sd as a share of its error: cpu-scaling's pooled relative sd (its report, 24 dof)


def scaling_acc(width: int, epochs: int) -> float:
    """Accuracy in points: error = 3.236 + 1.594 (w/64)^-1 + 1.2 (E/10)^-0.8, through 93.97 and 95.744."""
    return 100 - (3.236 + 1.594 * (width / 64) ** -1.0 + 1.2 * (epochs / 10) ** -0.8)


# cpu-scaling's measured cell means (results/cpu-scaling/report.md, 3 runs each), taken as the truth.
CPU_MEANS = {(8, 3): 73.43, (8, 5): 82.15, (8, 10): 85.87, (8, 20): 87.63, (16, 3): 81.36, (16, 5): 87.26,
             (16, 10): 90.45, (16, 20): 92.03, (32, 3): 85.21, (32, 5): 90.45, (32, 10): 92.84, (32, 20): 93.75}


def _proportional(acc):
    return lambda width, epochs: REL_SD * (100 - acc(width, epochs))


# Each grid: its cells, their true accuracy, its noise scenarios (true sd in points by cell) and its SE targets.
# Scenario order is part of the random seed: add new ones at the end so the earlier draws stay the same.
GRIDS = {
    "scaling": dict(
        widths=(64, 80, 96, 112, 128), epochs=(10, 20, 40, 80), acc=scaling_acc, targets="0.1,0.07,0.05",
        law="error% = 3.236 + 1.594 (width/64)^-1 + 1.2 (epochs/10)^-0.8", figure="epochs",
        noise={"flat": "0.14", "epochs": "0.25 at 10 epochs falling to 0.08 at 80 (power law)",
               "proportional": f"{REL_SD:g} x the error (0.15 at 64 x 10, 0.11 at 128 x 80)"},
        scenarios={"flat": lambda width, epochs: 0.14,
                   "epochs": lambda width, epochs: 0.25 * (epochs / 10) ** (-math.log(0.25 / 0.08) / math.log(8)),
                   "proportional": _proportional(scaling_acc)}),
    "cpu-scaling": dict(
        widths=(8, 16, 32), epochs=(3, 5, 10, 20), acc=lambda width, epochs: CPU_MEANS[width, epochs],
        targets="0.3,0.2,0.15", law="cpu-scaling's 12 measured cell means", figure="proportional",
        noise={"flat": "0.46 (cpu-scaling's pooled sd)",
               "proportional": f"{REL_SD:g} x the error (0.66 at 8 x 3, 0.15 at 32 x 20)"},
        scenarios={"flat": lambda width, epochs: 0.46,
                   "proportional": _proportional(lambda width, epochs: CPU_MEANS[width, epochs])}),
}


@dataclass
class Cell:
    width: int
    epochs: int
    sd: float
    flops: int
    draws: np.ndarray  # this replicate's seeds, in order: the policy and the even grid read the same prefix

    def state(self, n: int) -> CellState:
        return CellState({"width": self.width, "epochs": self.epochs}, tuple(range(n)), tuple(self.draws[:n]),
                         self.flops)


def make_cells(grid: str, scenario: str, rng: np.random.Generator, max_seeds: int) -> list[Cell]:
    g = GRIDS[grid]
    cells = []
    for w in g["widths"]:
        for e in g["epochs"]:
            sd = g["scenarios"][scenario](w, e)
            flops = speedrun.train_flops(speedrun.TrainConfig(width=w, epochs=e))
            cells.append(Cell(w, e, sd, flops, g["acc"](w, e) + sd * rng.standard_normal(max_seeds)))
    return cells


def adaptive_counts(cells: list[Cell], policy: Adaptive, prior_df: float | None = None,
                    predictor=None) -> tuple[list[int], str]:
    n = [policy.min_seeds] * len(cells)
    while True:
        states = [c.state(k) for c, k in zip(cells, n)]
        spent = sum(c.flops * k for c, k in zip(cells, n))
        decision = decide(policy, states, spent, predictor, prior_df=prior_df)
        if decision.stop is not None:
            return n, decision.stop
        for i in decision.add:
            n[i] += 1


def simulate_se(grid: str, replicates: int, targets: list[float], min_seeds: int, max_seeds: int,
                seed: int) -> dict:
    out = {}
    scenarios = GRIDS[grid]["scenarios"]
    for scenario in scenarios:
        for target in targets:
            key = [seed, int(target * 1000), list(scenarios).index(scenario)]
            rng = np.random.default_rng(key if grid == "scaling" else key + [list(GRIDS).index(grid)])
            replicate_cells = [make_cells(grid, scenario, rng, max_seeds) for _ in range(replicates)]
            labels = [f"w{c.width}-e{c.epochs}" for c in replicate_cells[0]]
            # The even grid knows the true noise: the fewest seeds per cell that meet the target in every cell.
            sds = [c.sd for c in replicate_cells[0]]
            even = max(min_seeds, math.ceil((max(sds) / target) ** 2 - 1e-9))
            even_flops = sum(c.flops * even for c in replicate_cells[0])

            def sweep(one, margin, prior_df=PRIOR_DF, noise="auto"):
                policy = Adaptive(min_seeds=min_seeds, max_seeds=max_seeds, target_se=target / margin, noise=noise)
                return summarise([one(cells, policy, prior_df, target) for cells in replicate_cells],
                                 even * len(sds), even_flops, labels)

            adaptive_margin, adaptive_matched = matched(lambda m: sweep(run_once, m))
            even_margin, even_matched = matched(lambda m: sweep(even_once, m))
            fixed = {noise: matched(lambda m, noise=noise: sweep(run_once, m, noise=noise)) for noise in NOISE_MODELS}
            result = {"scenario": scenario, "target_se_points": target, "n_replicates": replicates,
                      "even_seeds_per_cell": even, "runs_even": even * len(sds), "flops_even": even_flops,
                      "as_set": sweep(run_once, 1.0), "matched_margin": adaptive_margin, "matched": adaptive_matched,
                      "even_sequential_as_set": sweep(even_once, 1.0), "even_sequential_matched_margin": even_margin,
                      "even_sequential_matched": even_matched,
                      "noise_fixed": {noise: {"as_set": sweep(run_once, 1.0, noise=noise), "matched_margin": margin,
                                              "matched": summary}
                                      for noise, (margin, summary) in fixed.items()},
                      "prior_df_sensitivity": {f"{df:g}": sweep(run_once, 1.0, df) for df in (0.0, 1000.0)}}
            if adaptive_matched and even_matched:  # paired: the same draws for both
                result["matched_adaptive_vs_even_sequential"] = _saved(adaptive_matched, even_matched)
            for noise, (_, summary) in fixed.items():
                if adaptive_matched and summary:
                    result["noise_fixed"][noise]["matched_auto_vs_this"] = _saved(adaptive_matched, summary)
            out[f"{scenario}/se{target:g}"] = _public(result)
    return out


def _saved(ours: dict, theirs: dict) -> dict:
    """Paired over replicates (the same draws): the share of runs and FLOPs `ours` saves against `theirs`."""
    return {key: stat([1 - a / e for a, e in zip(ours[f"_{what}"], theirs[f"_{what}"])])
            for key, what in (("runs_saved_fraction", "runs"), ("flops_saved_fraction", "flops"))}


def stat(values) -> dict:
    """Mean with its 95% confidence interval, and the 2.5-97.5 percentiles of the replicates (their spread)."""
    values = list(values)
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {"mean": mean, "ci95_mean": [mean - half, mean + half], "p2.5": float(lo), "p97.5": float(hi),
            "n": len(values)}


def _public(value):
    """Drop the per-replicate lists (keys starting with '_') kept for paired comparisons."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not k.startswith("_")}
    return value


def matched(at_margin, lo: float = 1.0, hi: float = 2.5, steps: int = 6):
    """The smallest margin (target / margin) whose runs reach MATCH, by bisection (same draws at every margin),
    with its summary; (None, None) when even `hi` does not."""
    top = at_margin(hi)
    if top["cells_at_target"]["mean"] < MATCH:
        return None, None
    bottom = at_margin(lo)
    if bottom["cells_at_target"]["mean"] >= MATCH:
        return lo, bottom
    for _ in range(steps):
        mid = (lo + hi) / 2
        result = at_margin(mid)
        if result["cells_at_target"]["mean"] >= MATCH:
            hi, top = mid, result
        else:
            lo = mid
    return round(hi, 3), top


def even_once(cells: list[Cell], policy: Adaptive, prior_df: float, target: float) -> dict:
    """The even grid run the careful way without adaptivity: a seed for every cell at a time, until every cell's
    estimated standard error (the policy's own estimate) meets the target."""
    for n in range(policy.min_seeds, policy.max_seeds + 1):
        states = [c.state(n) for c in cells]
        if all(sd / math.sqrt(n) <= policy.target_se for sd in shrunk_sds(states, prior_df, policy.noise)):
            break
    return outcome(cells, [n] * len(cells), target, True)


MATCH = 0.95  # matched precision: on average 95% of cells at the target's true standard error (the even grid: 100%)


def run_once(cells: list[Cell], policy: Adaptive, prior_df: float, target: float) -> dict:
    counts, stop = adaptive_counts(cells, policy, prior_df)
    return outcome(cells, counts, target, stop.startswith("target met"))


def outcome(cells: list[Cell], counts: list[int], target: float, on_target: bool) -> dict:
    """What a replicate spent, and the precision it really reached (the scenario's sd / sqrt(seeds))."""
    true_se = [c.sd / math.sqrt(k) for c, k in zip(cells, counts)]
    return dict(runs=sum(counts), flops=sum(c.flops * k for c, k in zip(cells, counts)),
                met=sum(t <= target * (1 + 1e-9) for t in true_se) / len(cells),
                met10=sum(t <= target * 1.1 for t in true_se) / len(cells),
                worst=max(true_se) / target, on_target=on_target, counts=counts)


def summarise(rows: list[dict], even_runs: int, even_flops: int, labels: list[str]) -> dict:
    return {"_runs": [r["runs"] for r in rows], "_flops": [r["flops"] for r in rows], "runs": stat([r["runs"] for r in rows]), "flops": stat([r["flops"] for r in rows]),
            "runs_saved_fraction": stat([1 - r["runs"] / even_runs for r in rows]),
            "flops_saved_fraction": stat([1 - r["flops"] / even_flops for r in rows]),
            "cells_at_target": stat([r["met"] for r in rows]),
            "cells_within_10pct_of_target": stat([r["met10"] for r in rows]),
            "worst_cell_true_se_over_target": stat([r["worst"] for r in rows]),
            "stopped_on_target_fraction": statistics.fmean(r["on_target"] for r in rows),
            "mean_seeds_per_cell": dict(zip(labels, np.mean([r["counts"] for r in rows], axis=0).round(2).tolist()))}


def plot(grid: str, results: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.4))
    ax_runs, ax_cells = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    draw_runs(ax_runs, results)
    worst = [k for k in results if k.startswith(GRIDS[grid]["figure"] + "/") and results[k]["matched"]]
    draw_seeds(ax_cells, grid, results[min(worst, key=lambda k: results[k]["target_se_points"])])
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def draw_runs(ax, results: dict):
    labels, x = list(results), np.arange(len(results))
    bars = (("even grid, true noise known", lambda r: (r["runs_even"],) * 3),
            ("even grid, seeds added to all cells until the target is met (matched)",
             lambda r: _triple(r["even_sequential_matched"]["runs"]) if r["even_sequential_matched"] else (0,) * 3),
            ("adaptive, noise = \"auto\" (matched; the default)",
             lambda r: _triple(r["matched"]["runs"]) if r["matched"] else (0,) * 3),
            *((f"adaptive, noise = \"{noise}\" (matched)",
               lambda r, noise=noise: _triple(r["noise_fixed"][noise]["matched"]["runs"])
               if r["noise_fixed"][noise]["matched"] else (0,) * 3) for noise in NOISE_MODELS))
    for j, (name, get) in enumerate(bars):
        values = [get(results[k]) for k in labels]
        mean = [v[0] for v in values]
        ax.bar(x + (j - 2) * 0.17, mean, 0.17, label=name,
               yerr=[[m - v[1] for m, v in zip(mean, values)], [v[2] - m for m, v in zip(mean, values)]], capsize=2)
    ax.set_xticks(x, [k.replace("/se", "\nSE ≤ ") for k in labels], fontsize=7)
    ax.set_ylabel("runs (mean, 95% range over replicates)")
    ax.set_title("runs to reach a per-cell standard error target (points), by noise scenario", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def _triple(stat: dict) -> tuple[float, float, float]:
    return stat["mean"], stat["p2.5"], stat["p97.5"]


def draw_seeds(ax, grid_name: str, result: dict):
    widths, epochs = GRIDS[grid_name]["widths"], GRIDS[grid_name]["epochs"]
    counts = result["matched"]["mean_seeds_per_cell"]
    grid = np.array(list(counts.values())).reshape(len(widths), len(epochs))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(epochs)), epochs)
    ax.set_yticks(range(len(widths)), widths)
    ax.set_xlabel("epochs")
    ax.set_ylabel("width")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_title(f"adaptive (matched): mean seeds per cell\n{result['scenario']} noise, SE ≤ "
                 f"{result['target_se_points']:g} (even grid: {result['even_seeds_per_cell']} per cell)", fontsize=9)
    ax.figure.colorbar(image, ax=ax)
    return ax


def simulate_law(replicates: int, command: str, target: float, seed: int, max_seeds: int) -> dict:
    """The law-interval target: the same loop, with the predictor answering on synthetic run records."""
    from studies.predictor import Predictor

    at = {"width": 128, "epochs": 80}
    policy = Adaptive(min_seeds=3, max_seeds=max_seeds, target_halfwidth=target, at=at)
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(replicates):
            cells = make_cells("scaling", "flat", rng, policy.max_seeds)
            predictor = Predictor(tuple(shlex.split(command)), at, "simulated", Path(cache))

            def with_records(states):
                return [CellState(s.cell, s.seeds, s.values, s.flops, tuple(record(s.cell, k, v)
                        for k, v in zip(s.seeds, s.values))) for s in states]

            n = [policy.min_seeds] * len(cells)
            while True:
                states = with_records([c.state(k) for c, k in zip(cells, n)])
                decision = decide(policy, states, sum(c.flops * k for c, k in zip(cells, n)), predictor)
                if decision.stop is not None:
                    break
                for i in decision.add:
                    n[i] += 1
            rows.append({"runs_adaptive": sum(n), "counts": n, "stop": decision.stop, "measure": decision.measure,
                         "predictor_calls": predictor.calls})
    return {"target_halfwidth_points": target, "at": at, "replicates": rows}


def record(cell: dict, seed: int, acc_points: float) -> dict:
    """A synthetic run record (the fields analysis reads); never written under results/."""
    config = speedrun.TrainConfig(width=cell["width"], epochs=cell["epochs"], seed=seed)
    return {"schema_version": 1, "run_id": speedrun.run_id(config), "study": "simulated", "status": "ok",
            "error": None, "config": config.to_dict(), "ema_val_acc": acc_points / 100,
            "train_flops": speedrun.train_flops(config), **speedrun.model_stats(config),
            "device_name": "simulated", "simulated": True}


def _words(r: dict) -> str:
    runs, flops = r["runs_saved_fraction"], r["flops_saved_fraction"]
    return (f"{r['runs']['mean']:.0f} runs ({_fewer(runs['mean'])} than the even grid knowing the noise; replicates "
            f"{100 * runs['p2.5']:.0f}% to {100 * runs['p97.5']:.0f}% saved), FLOPs {_fewer(flops['mean'])}, "
            f"{100 * r['cells_at_target']['mean']:.0f}% of cells at the target, worst cell "
            f"{r['worst_cell_true_se_over_target']['mean']:.2f}x the target")


def _paired(saved: dict) -> str:
    """'12% fewer (95% CI 5 to 18% saved)' from a paired saved-fraction stat."""
    lo, hi = saved["ci95_mean"]
    return f"{_fewer(saved['mean'])} (95% CI {100 * lo:.0f} to {100 * hi:.0f}% saved)"


def _fewer(saved: float) -> str:
    return f"{100 * saved:.0f}% fewer" if saved >= 0 else f"{-100 * saved:.0f}% more"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("se", "law"), default="se")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--grid", choices=tuple(GRIDS), default="scaling", help="the cells simulated")
    parser.add_argument("--targets", help="per-cell SE targets, points (default: the grid's)")
    parser.add_argument("--min-seeds", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--predictor", default="python -m analysis predict", help="--target law: the command")
    parser.add_argument("--halfwidth", type=float, default=0.10, help="--target law: ci95 half-width, points")
    parser.add_argument("--out", default=str(HERE), help="folder for the JSON and the figure")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.target == "law":
        result = simulate_law(args.replicates, args.predictor, args.halfwidth, args.seed, args.max_seeds)
        (out / "law-target.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "replicates"}))
        return 0
    grid = GRIDS[args.grid]
    targets = [float(t) for t in (args.targets or grid["targets"]).split(",")]
    results = simulate_se(args.grid, args.replicates, targets, args.min_seeds, args.max_seeds, args.seed)
    meta = {"command": "PYTHONPATH=. python results/benchmarks/adaptive-seeds/simulate.py "
                       + " ".join(argv if argv is not None else sys.argv[1:]),
            "grid": {"name": args.grid, "widths": grid["widths"], "epochs": grid["epochs"]},
            "truth": grid["law"], "noise_sd_points": grid["noise"],
            "policy": {"min_seeds": args.min_seeds, "max_seeds": args.max_seeds, "batch": 1, "prior_df": PRIOR_DF,
                       "noise": "auto (the default); noise_fixed: the same with each fixed model"},
            "even_grid": "the fewest seeds per cell that meet the target in every cell, knowing the true noise",
            "matched": f"run at target / margin, the smallest margin (bisection on 1-2.5) with on average >= "
                       f"{MATCH:.0%} of cells at the target's true standard error; even_sequential: a seed for every "
                       f"cell at a time until every cell's estimated standard error meets target / margin"}
    stem = "se-target" if args.grid == "scaling" else f"se-target-{args.grid}"
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    plot(args.grid, results, out / f"{stem}.png")
    for key, r in results.items():
        print(f"{key} (n={r['n_replicates']} replicates): even grid knowing the noise {r['even_seeds_per_cell']}/cell "
              f"= {r['runs_even']} runs")
        rows = [("adaptive as set", r["as_set"], 1), ("adaptive matched", r["matched"], r["matched_margin"]),
                ("even seq. as set", r["even_sequential_as_set"], 1),
                ("even seq. matched", r["even_sequential_matched"], r["even_sequential_matched_margin"])]
        for noise, fixed in r["noise_fixed"].items():
            rows += [(f"{noise} as set", fixed["as_set"], 1), (f"{noise} matched", fixed["matched"],
                                                              fixed["matched_margin"])]
        for name, value, margin in rows:
            if value:
                print(f"   {name:<18} (target/{margin:g}): {_words(value)}")
        if "matched_adaptive_vs_even_sequential" in r:
            v = r["matched_adaptive_vs_even_sequential"]
            runs, flops = v["runs_saved_fraction"], v["flops_saved_fraction"]
            print(f"   at matched precision adaptive takes {_paired(runs)} runs and {_paired(flops)} FLOPs than the "
                  f"sequential even grid")
        for noise, fixed in r["noise_fixed"].items():
            if "matched_auto_vs_this" in fixed:
                runs, flops = fixed["matched_auto_vs_this"]["runs_saved_fraction"], fixed["matched_auto_vs_this"][
                    "flops_saved_fraction"]
                print(f"   at matched precision noise = auto takes {_paired(runs)} runs and {_paired(flops)} FLOPs "
                      f"than noise = {noise}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
