"""Compiled against eager on the CPU: the records in this folder, side by side, and the check the issue asks for
(means of final EMA accuracy within 2 standard errors of their difference), with Welch's p for good measure.

    python results/compile-check/summarize.py            # prints the README's tables
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load() -> dict[str, list[dict]]:
    arms: dict[str, list[dict]] = {"eager": [], "compile": []}
    for path in sorted(HERE.glob("w8-e10-*-s*.json")):
        record = json.loads(path.read_text())
        arms["compile" if record["config"]["compile"] else "eager"].append(record)
    return arms


def main() -> None:
    arms = load()
    print("| run | seed | ema_val_acc | val_acc | train_time_s | compile_s | wall_time_s | git |")
    print("|---|---|---|---|---|---|---|---|")
    for name, records in arms.items():
        for r in records:
            print(f"| {name} | {r['config']['seed']} | {100 * r['ema_val_acc']:.2f}% | {100 * r['val_acc']:.2f}% | "
                  f"{r['train_time_s']:.0f} | {r.get('compile_s', 0):.0f} | {r['wall_time_s']:.0f} | "
                  f"{r['git_commit'][:7]}{' dirty' if r['git_dirty'] else ''} |")
    acc = {k: [r["ema_val_acc"] for r in v] for k, v in arms.items()}
    if min(len(v) for v in acc.values()) < 2:
        print("\nfewer than 2 runs in an arm: no comparison yet")
        return
    mean = {k: statistics.fmean(v) for k, v in acc.items()}
    sd = {k: statistics.stdev(v) for k, v in acc.items()}
    diff = mean["compile"] - mean["eager"]
    se = math.sqrt(sum(sd[k] ** 2 / len(acc[k]) for k in acc))
    print()
    for k in acc:
        print(f"- {k}: n = {len(acc[k])}, ema_val_acc {100 * mean[k]:.2f}% ± {100 * sd[k]:.2f} points (mean ± SD)")
    print(f"- compiled − eager: {100 * diff:+.2f} points; standard error of the difference {100 * se:.2f} points; "
          f"|difference| = {abs(diff) / se:.2f} SE ({'within' if abs(diff) <= 2 * se else 'NOT within'} 2 SE)")
    try:
        from scipy import stats

        p = stats.ttest_ind(acc["compile"], acc["eager"], equal_var=False).pvalue
        print(f"- Welch's t-test: p = {p:.2f}")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
