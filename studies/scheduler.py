"""`run_study`: expand a study, skip what is done, execute the rest on a backend, show progress, summarise.

The scheduler itself holds no state worth saving: the truth is the results folder (records, locks). Killed at
any moment and started again, it re-reads the folder, removes leftovers of dead writers, breaks stale locks
and carries on. It never initialises CUDA: devices are counted with nvidia-smi and handed to workers by name.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from common.states import DRY_RUN_WORDS

from .backends import BACKENDS, Pool, backend_class
from .estimate import plan_cost
from .execute import Summary, execute_runs
from .locks import LOCK_TTL_S
from .plan import Plan, plan_study
from .rounds import print_adaptive_dry_run, run_rounds
from .spec import Study
from .store import StudyPaths

__all__ = ["RunOptions", "Summary", "run_study", "WAIT_POLL_S"]

WAIT_POLL_S = 5.0  # --wait: how often the results folder is read again while runs are held elsewhere


@dataclass(frozen=True)
class RunOptions:
    results: str = "results"  # root folder; the study's records go to <results>/<study>/
    jobs: int | None = None  # runs at once (default: one per GPU, else 1); 1 runs in this process
    devices: list[int] | None = None  # GPU indices (default: all visible)
    backend: str = next(iter(BACKENDS))  # a key of backends.BACKENDS
    address: str | None = None  # dask scheduler, e.g. tcp://host:8786
    data_dir: str | None = None  # passed to every run (execution-only; else $CIFAR10_DIR on each worker)
    dry_run: bool = False
    progress: bool = True  # the tqdm bar on stderr
    bench: bool = True  # dry run: time a few training steps for runs no finished record covers
    adaptive: bool = False  # seeds by the study's [adaptive] policy instead of the grid's listed seeds
    recycle_workers_mb: float | None = None  # loky: replace a worker grown this many MiB (None: keep workers)
    wait: bool = False  # after its own runs, wait for those running elsewhere and take over any whose holder died
    slurm: dict = field(default_factory=dict)  # --backend slurm settings from the command line (slurm.SLURM_KEYS)
    on_record: Callable | None = None  # (study folder, run_id) as each record lands: the live export (export/live.py)


def run_study(study: Study, options: RunOptions, *, out: TextIO | None = None, err: TextIO | None = None) -> Summary:
    """Execute every run of `study` that has no ok record. Raises DeviceError, StoreError or BackendError
    (before any run starts) when the options or the results folder cannot work."""
    out, err = out or sys.stdout, err or sys.stderr
    t0 = time.perf_counter()
    backend = backend_class(options)  # ValueError for options the backend cannot use
    if options.adaptive and study.adaptive is None:
        raise ValueError(f"--adaptive: study {study.name!r} ({study.source or 'built by hand'}) has no [adaptive] "
                         f"table; add one with a target (see studies/README.md)")
    paths = StudyPaths.of(options.results, study.name)
    slots = backend.plan(study, options)
    if options.dry_run and options.adaptive:
        state = print_adaptive_dry_run(study, paths, slots, options.results, out, bench=options.bench)
        return Summary(study.name, skipped=len(state.chosen) - len(state.todo))
    if options.dry_run:
        plan = plan_study(study, paths)
        _print_dry_run(plan, out)
        for line in backend.describe(study, options):
            print(line, file=out)
        for line in plan_cost(plan, slots, options.results, bench=options.bench).lines():
            print(line, file=out)
        return Summary(study.name, skipped=plan.final,
                       elsewhere=plan.count("running"))

    summary = Summary(study.name)
    pool: Pool | None = backend.start(study, options, slots)  # connects to dask: an unreachable cluster fails first
    try:
        paths.prepare()
        for line in paths.clean_leftovers():
            print(f"note: {line}", file=err)
        where = backend.where(options, slots)
        if options.adaptive:
            print(f"{study.name}: adaptive seeds on {where}; results in {paths.root}", file=err)
            run_rounds(study, paths, pool, summary, err, data_dir=options.data_dir, progress=options.progress,
                       on_record=options.on_record)
        else:
            _run_grid(study, options, paths, pool, slots, where, summary, err)
    except KeyboardInterrupt:
        summary.interrupted = True
        pool.close(kill=True)
        pool = None
    finally:
        if pool is not None:
            pool.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _run_grid(study: Study, options: RunOptions, paths: StudyPaths, pool: Pool, slots, where: str, summary: Summary,
              err: TextIO) -> None:
    """Every run of the grid's listed seeds that has no final record. Waiting (--wait, and always on a backend
    whose lost workers leave locks behind): until no run is running elsewhere, taking over any whose holder died."""
    if study.adaptive is not None:
        print(f"note: {study.name} has an [adaptive] policy; this runs the grid's listed seeds (add --adaptive "
              f"to use the policy)", file=err)
    plan = plan_study(study, paths)
    for problem in plan.problems:
        print(f"warning: {problem}", file=err)
    # A diverged record is final too (a rerun would diverge again): skipped like a done run.
    summary.skipped = plan.final
    summary.elsewhere, todo = plan.count("running"), plan.todo
    print(f"{study.name}: {len(plan.runs)} runs — {summary.skipped} done, {summary.elsewhere} running elsewhere, "
          f"{len(todo)} to run on {where}; results in {paths.root}", file=err)
    cost = plan_cost(plan, slots, options.results) if todo else None  # records only: no bench before a run
    for line in cost.lines()[1:] if cost is not None and cost.seconds is not None else []:
        print(line, file=err)
    wait = options.wait or pool.waits_for_stale
    told = False
    while True:
        if todo:
            execute_runs(study, paths, pool, todo, summary, err, data_dir=options.data_dir, progress=options.progress,
                         on_record=options.on_record)
        if not wait or summary.no_space:
            return
        plan = plan_study(study, paths)
        # What failed here stays failed (retries are the policy's); a run freed by a dead holder is taken over.
        todo = [r for r in plan.todo if r.run_id not in summary.errors]
        if not todo and not plan.count("running"):
            break
        if not todo:
            if not told:
                print(f"waiting for {plan.count('running')} run(s) running elsewhere; one whose holder dies is taken "
                      f"over (within {LOCK_TTL_S:.0f}s across hosts)", file=err)
                told = True
            time.sleep(WAIT_POLL_S)
    # Everything is final now: what this scheduler did not finish, others did (or had before it started).
    summary.elsewhere = 0
    summary.skipped = plan.final - summary.ok - summary.diverged


def _print_dry_run(plan: Plan, out: TextIO) -> None:
    print(f"{plan.study.name}: {len(plan.runs)} runs — {plan.count('done')} done, {plan.count('running')} running "
          f"elsewhere, {len(plan.todo)} to run (dry run: nothing is executed)", file=out)
    for run in plan.runs:
        state = plan.state[run.run_id]
        holder = f" [{plan.holder[run.run_id]}]" if state == "running" else ""
        print(f"  {DRY_RUN_WORDS[state]:<26} {run.run_id}  {run.label()}{holder}", file=out)
    for problem in plan.problems:
        print(f"  warning: {problem}", file=out)
