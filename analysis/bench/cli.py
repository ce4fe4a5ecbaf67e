"""The benchmark commands of `python -m analysis`: `calibrate` (coverage of the fits' intervals on synthetic
grids), `calibrate-checks DIR` (size and power of the checks' joint test) and `bench-report` (how long `report`
takes). Registered by analysis/cli.py; the same one-line errors and exit codes."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..cliargs import positive
from ..laws import law_names
from ..study import DEFAULT_BOOT, analyse
from .calibrate import calibrate, write_calibration
from .calibrate_checks import DEFAULT_SHIFTS, calibrate_joint, write_joint_calibration
from .report_speed import bench_report, write_bench

__all__ = ["add_bench_commands"]


def add_bench_commands(commands, command) -> None:
    """Add the three commands to `commands` (the subparsers); `command(name, function, help)` adds one taking DIR."""
    cal = commands.add_parser("calibrate", help="the calibration benchmark on synthetic scaling-shaped grids",
                              description="Coverage of the fits' 95% intervals on synthetic grids from a known law.")
    cal.add_argument("--grids", type=positive, default=100, help="synthetic grids (default 100)")
    cal.add_argument("--n-boot", type=positive, default=DEFAULT_BOOT, help=f"draws per fit (default {DEFAULT_BOOT})")
    cal.add_argument("--seed", type=int, default=2024, help="seed of the synthetic data (default 2024)")
    cal.add_argument("--boot-from", choices=("point", "grid"), default="point",
                     help="refit each draw from the estimate (default) or from the whole start grid")
    cal.add_argument("--no-select", action="store_true", help="skip the law choice per grid (faster)")
    cal.add_argument("--out", default="results/benchmarks/calibration", help="folder for calibration.json/.md")
    cal.set_defaults(command=_calibrate)
    joint = command("calibrate-checks", _calibrate_checks,
                    "size and power of the checks' joint test on this study, by parametric bootstrap")
    joint.add_argument("--law", choices=law_names(), default=None, help="default: the report's chosen law")
    joint.add_argument("--studies", type=positive, default=200, help="simulated studies (default 200)")
    joint.add_argument("--n-boot", type=positive, default=DEFAULT_BOOT, help=f"draws per fit (default {DEFAULT_BOOT})")
    joint.add_argument("--shift", type=float, action="append", default=[], metavar="POINTS",
                       help="a shared shortfall to detect, in accuracy points (repeatable; default "
                            f"{' and '.join(f'{v:g}' for v in DEFAULT_SHIFTS)})")
    joint.add_argument("--seed", type=int, default=0, help="seed of the simulation and the bootstrap (default 0)")
    joint.add_argument("--out", default=None,
                       help="folder for joint-calibration.json/.md (default results/benchmarks/joint-checks/<DIR's name>)")
    bench = commands.add_parser("bench-report", help="time `report` on a synthetic 140-run scaling-shaped grid",
                                description="Time the whole report on 140 synthetic runs; prints seconds and load.")
    bench.add_argument("--n-boot", type=positive, default=DEFAULT_BOOT, help=f"draws per fit (default {DEFAULT_BOOT})")
    bench.add_argument("--jobs", type=int, default=1, help="joblib workers for the bootstrap (default 1)")
    bench.add_argument("--repeat", type=positive, default=1, help="time the report this many times (default 1)")
    bench.add_argument("--out", default=None, help="also write the figures as JSON here")
    bench.set_defaults(command=_bench_report)


def _bench_report(args) -> int:
    results = []
    for _ in range(args.repeat):
        result = bench_report(n_boot=args.n_boot, n_jobs=args.jobs)
        results.append(result)
        print(f"analysis report on {result['runs']} synthetic runs ({result['n_boot']} bootstrap draws, "
              f"{result['n_jobs']} job(s)): {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU; load average "
              f"{result['load_average_before']} before, {result['load_average_after']} after; {result['cpus']} CPUs")
    if args.out:
        print(f"wrote {write_bench({'command': ' '.join(['python -m analysis', *args.argv]), 'repeats': results}, args.out)}")
    return 0


def _calibrate(args) -> int:
    def progress(k):
        if k % 10 == 0 or k == args.grids:
            print(f"{k}/{args.grids} grids", file=sys.stderr, flush=True)

    result = calibrate(n_grids=args.grids, n_boot=args.n_boot, seed=args.seed, boot_from=args.boot_from,
                       select=not args.no_select, progress=progress)
    command = " ".join(["python -m analysis"] + (args.argv or []))
    paths = write_calibration(result, args.out, command)
    print(f"wrote {', '.join(map(str, paths))}")
    return 0


def _calibrate_checks(args) -> int:
    study = analyse(args.dir, n_boot=args.n_boot, seed=args.seed)

    def progress(k):
        if k % 25 == 0 or k == args.studies:
            print(f"{k}/{args.studies} simulated studies", file=sys.stderr, flush=True)

    result = calibrate_joint(study, args.law, n_studies=args.studies, n_boot=args.n_boot,
                             shifts=args.shift or DEFAULT_SHIFTS, seed=args.seed, progress=progress)
    out = args.out or os.path.join("results", "benchmarks", "joint-checks", Path(args.dir).resolve().name)
    paths = write_joint_calibration(result, out, " ".join(["python -m analysis"] + (args.argv or [])))
    s = result.summary()
    for row in s["shifts"].values():
        print(f"shift {row['shift_points']:+g} points: rejected {row['rejected']}/{row['of']} "
              f"({100 * row['rate']:.1f}%), mean chi2 {row['mean_chi2']:.2f} on {row['dof']} dof")
    print(f"the study's own checks: chi2 {s['observed']['chi2']:.2f}, nominal p {s['observed']['p_nominal']:.2g}, "
          f"simulated p {s['observed']['p_simulated']:.2g}")
    print(f"wrote {', '.join(map(str, paths))}")
    return 0
