"""`python -m studies run|status NAME|FILE ...` and `export DIR`: the command line over run_study, study_status and
the export (export/cli.py).

Exit codes: 0 all good, 1 some run failed (or the study's [after] command did), 2 the study file, the options or
the results folder are unusable (nothing ran), 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys

__all__ = ["main", "build_parser"]


def _mebibytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of MiB > 0, e.g. --recycle-workers 4000")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import slurm
    from .backends import BACKENDS
    from .spec import MAX_RUNS
    from .export import TRACKERS
    from .export.cli import add_export_parser, add_tracker_options
    from .studyfile import builtin_studies

    parser = argparse.ArgumentParser(
        prog="python -m studies", description="Run grids of speedrun trainings (studies) and see where they stand.",
        epilog="Built-in studies: " + ", ".join(builtin_studies()) + ". See studies/README.md.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,status,export}")
    run = sub.add_parser("run", help="execute every run of a study that has no ok record yet")
    status = sub.add_parser("status", help="done / failed / running / pending per grid cell")
    for p in (run, status):
        p.add_argument("study", metavar="NAME|FILE", help="a built-in study's name or a path to a study .toml")
        p.add_argument("--allow-large-grid", action="store_true",
                       help=f"accept a grid of more than {MAX_RUNS:,} runs (refused by default: a typo, usually)")
        p.add_argument("--results", default="results", metavar="DIR",
                       help="results root; records go to DIR/<study>/runs (default: results)")
    run.add_argument("--jobs", type=int, metavar="N",
                     help="runs at once (default: one per GPU, else 1); --jobs 1 runs in this process, for debugging")
    run.add_argument("--devices", metavar="0,1,...", help="GPU indices to use (default: all visible)")
    run.add_argument("--backend", choices=tuple(BACKENDS),
                     help="loky: worker processes on this machine (default); dask: a dask.distributed cluster "
                          "(the default when --address is given)")
    run.add_argument("--address", metavar="tcp://HOST:8786", help="the dask scheduler to send runs to")
    run.add_argument("--data-dir", metavar="DIR",
                     help="folder holding cifar-10-batches-py, for every run (default: $CIFAR10_DIR, then the cache)")
    run.add_argument("--dry-run", action="store_true",
                     help="list what would run and what is done, with its cost; run nothing")
    run.add_argument("--adaptive", action="store_true",
                     help="add seeds where the uncertainty is largest, by the study's [adaptive] policy")
    run.add_argument("--wait", action="store_true",
                     help="after its own runs, wait for runs other schedulers hold and take over any whose holder "
                          "dies (for several schedulers on one study, e.g. an sbatch array)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run stays)")
    run.add_argument("--recycle-workers", type=_mebibytes, metavar="MB",
                     help="let loky replace a worker whose memory grew MB MiB past its size after its first run "
                          "(logged; default: workers are kept, with their CUDA context, data and compiled steps)")
    run.add_argument("--no-bench", action="store_true",
                     help="--dry-run: no `speedrun bench` for runs no finished record covers (their time stays unknown)")
    run.add_argument("--export", choices=tuple(TRACKERS), metavar="TRACKER",
                     help="export each record to this tracker as it lands (" + ", ".join(TRACKERS) + "; options "
                          "as for `export`); a failing tracker warns and never stops the study")
    add_tracker_options(run)
    status.add_argument("--bench", action="store_true",
                        help="time a few training steps (`speedrun bench`) for runs no finished record covers")
    status.add_argument("--adaptive", action="store_true",
                        help="show the runs the study's [adaptive] policy has chosen, as `run --adaptive` sees them")
    slurm.add_arguments(run)
    add_export_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export":
        from .export.cli import export_main

        return export_main(args)
    from .devices import DeviceError, parse_devices
    from .backends import BackendError, default_backend
    from .store import StoreError
    from .spec import MAX_RUNS
    from .studyfile import StudyError, load_study

    if args.command == "run" and args.dry_run and not args.no_bench or args.command == "status" and args.bench:
        from .netbench import prestart

        prestart()  # its torch import overlaps reading and expanding the grid
    try:
        study = load_study(args.study, max_runs=None if args.allow_large_grid else MAX_RUNS)
    except StudyError as e:
        print(f"error: the study cannot be used ({len(e.problems)} problem{'s' if len(e.problems) > 1 else ''}):",
              file=sys.stderr)
        for line in e.problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    if args.command == "status":
        from .status import format_status, study_status

        try:
            print(format_status(study_status(study, args.results, bench=args.bench, adaptive=args.adaptive), study))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0

    from .afteronce import after_once
    from .plugins import after_argv
    from .scheduler import RunOptions, run_study
    from .slurm import from_args

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` gets the same orderly stop as Ctrl-C
    live = _live_export(args)
    try:
        options = RunOptions(results=args.results, jobs=args.jobs,
                             devices=parse_devices(args.devices) if args.devices is not None else None,
                             backend=args.backend or default_backend(args.address), address=args.address,
                             data_dir=args.data_dir,
                             dry_run=args.dry_run, progress=not args.no_progress, bench=not args.no_bench,
                             adaptive=args.adaptive, recycle_workers_mb=args.recycle_workers, wait=args.wait,
                             slurm=from_args(args),
                             on_record=live.on_record if live else None)
        summary = run_study(study, options)
    except (DeviceError, StoreError, BackendError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in live.finish() if live else ():  # a tracker's trouble is a warning: the exit code stays the study's
        print(line, file=sys.stderr if line.startswith("warning") else sys.stdout)
    if args.dry_run and study.after:
        print(f"once every run is ok: {shlex.join(after_argv(study, args.results))} (the study's [after])")
    if not args.dry_run:
        print(summary.line())
        for run_id, error in summary.errors.items():
            print(f"  failed {run_id}: {error} (log: {args.results}/{study.name}/logs/{run_id}.log)")
        for run_id, reason in summary.divergences.items():
            print(f"  diverged {run_id}: {reason} (final, not retried; record: "
                  f"{args.results}/{study.name}/runs/{run_id}.json)")
        if summary.adaptive:
            print(f"adaptive: {summary.adaptive}")
        if summary.no_space:
            print(f"error: {summary.no_space}", file=sys.stderr)
        if study.after and summary.exit_code == 0:  # fires once, by the last scheduler to finish (afteronce.py)
            if args.adaptive and summary.elsewhere:  # its rounds are this scheduler's alone: wait for them here
                code, why = 0, f"not yet: {summary.elsewhere} run(s) are running elsewhere"
            else:
                code, why = after_once(study, args.results, _record_ids(study, args.results) if args.adaptive else None)
            if why:
                print(f"[after] not run: {why}")
            if code != 0:
                print(f"error: the study's [after] command exited {code}; the runs are done and their records kept "
                      f"— run it again by hand: {shlex.join(after_argv(study, args.results))}", file=sys.stderr)
                return 1
    return summary.exit_code


def _record_ids(study, results: str) -> list[str]:
    from .store import StudyPaths

    return StudyPaths.of(results, study.name).record_ids()


def _live_export(args):
    if args.export is None or args.dry_run:
        return None
    from .export.cli import tracker_options
    from .export.live import LiveExport

    return LiveExport(args.export, tracker_options(args), sys.stderr)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
