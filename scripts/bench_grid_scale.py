"""Benchmark: how `studies` copes with big grids, for one or more checkouts side by side.

    python scripts/bench_grid_scale.py [--checkout DIR ...] [--limit-s 600] [--out results/benchmarks/X/figures.json]

For each checkout (default: this one) it times, in a fresh process each:
  1. `studies run G100K --dry-run`: a 100,000-run grid (20 widths x 50 epochs x 100 seeds), no records, so the
     estimate has to bench (the new code times at most 3 networks and interpolates the rest);
  2. the same with --no-bench (expansion, planning and listing alone);
  3. `studies status G10K` on a folder of 10,000 ok records (20 widths x 50 epochs x 10 seeds);
  4. `studies run G16M --dry-run`: a 16,000,000-run grid, which should be refused at once.
and prints wall seconds, CPU seconds (user + system) and peak memory (max RSS) of each, or "> limit" where the
command had to be killed. Records for (3) are synthetic (analysis.testing.make_record), built once and shared.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 72, 80, 96, 128]


def grid_file(folder: Path, name: str, widths, epochs, seeds) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\ndescription = "a scale benchmark; nothing trains"\n[grid]\n'
                    f"width = {list(widths)}\nepochs = {list(epochs)}\nseed = {list(seeds)}\n"
                    f'[fixed]\ndevice = "cpu"\nthreads = 1\ntrain_subset = 1024\ntest_subset = 256\n')
    return path


def write_records(path: Path, results: Path) -> None:
    """ok records for every run of the study at `path`, in results/<name>/runs (this checkout's code)."""
    sys.path.insert(0, str(ROOT))
    from analysis.testing import make_record
    from studies import load_study

    study = load_study(path)
    runs = results / study.name / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for run in study.runs():
        c = run.config
        record = make_record(width=c.width, epochs=c.epochs, seed=c.seed, study=study.name, config=c.to_dict(),
                             run_id=run.run_id, train_images=1024)
        (runs / f"{run.run_id}.json").write_text(json.dumps(record))


def measure(checkout: Path, args: list[str], limit_s: float) -> dict:
    """Run `python -m studies ARGS` from `checkout`; wall and CPU seconds, peak RSS, exit code, last line."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "studies", *args], cwd=checkout, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > limit_s:
                os.killpg(proc.pid, signal.SIGKILL)  # its bench subprocesses too
                pid, status, usage = os.wait4(proc.pid, 0)
                killed = True
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.strip()]
    return dict(wall_s=round(wall, 2), cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
                max_rss_mb=round(usage.ru_maxrss / 1024), exit=proc.returncode, killed=killed,
                lines=len(lines), tail=[line[:300] for line in lines[-4:]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", type=Path, help="a checkout to measure (repeatable)")
    parser.add_argument("--limit-s", type=float, default=600.0, help="kill a command after this long")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    checkouts = args.checkout or [ROOT]
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        g100k = grid_file(tmp, "g100k", WIDTHS, range(1, 51), range(100))
        g10k = grid_file(tmp, "g10k", WIDTHS, range(1, 51), range(10))
        g16m = grid_file(tmp, "g16m", range(1, 401), range(1, 201), range(200))
        records = tmp / "records"
        write_records(g10k, records)
        empty = tmp / "empty"
        cases = {
            "dry-run 100k (bench)": ["run", str(g100k), "--dry-run", "--results", str(empty)],
            "dry-run 100k --no-bench": ["run", str(g100k), "--dry-run", "--no-bench", "--results", str(empty)],
            "status 10k records": ["status", str(g10k), "--results", str(records)],
            "dry-run 16M": ["run", str(g16m), "--dry-run", "--no-bench", "--results", str(empty)],
        }
        for checkout in checkouts:
            for case, argv in cases.items():
                result = measure(checkout.resolve(), argv, args.limit_s)
                figures.setdefault(str(checkout), {})[case] = result
                took = f"> {args.limit_s:.0f} s (killed)" if result["killed"] else f"{result['wall_s']:.1f} s"
                print(f"{checkout}  {case:<26} wall {took:<18} cpu {result['cpu_s']:7.1f} s  "
                      f"peak {result['max_rss_mb']:6d} MB  exit {result['exit']}", flush=True)
                for line in result["tail"][-2:]:
                    print(f"    | {line}", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
