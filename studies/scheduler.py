"""`run_study`: expand a study, skip what is done, execute the rest on a backend, show progress, summarise.

The scheduler itself holds no state worth saving: the truth is the results folder (records, locks). Killed at
any moment and started again, it re-reads the folder, removes leftovers of dead writers, breaks stale locks
and carries on. It never initialises CUDA: devices are counted with nvidia-smi and handed to workers by name.
"""
from __future__ import annotations

import os
import secrets
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

import speedrun

from .backends import BACKENDS, Pool, backend_class
from .devices import Slot
from .locks import LockInfo, claim
from .plan import Plan, plan_study
from .spec import Run, Study
from .store import StudyPaths
from .task import RunOutcome, RunTask, write_failed

__all__ = ["RunOptions", "Summary", "run_study"]


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


@dataclass
class Summary:
    study: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already done before we started, or finished by another scheduler meanwhile
    elsewhere: int = 0  # claimed by another scheduler; not run here
    lost: int = 0  # our lock was taken over mid-run; the other scheduler finishes it
    seconds: float = 0.0
    interrupted: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # run_id -> error, for failed runs

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else 1 if (self.failed or self.lost) else 0

    def line(self) -> str:
        head = f"{self.study}: {self.ok} ok, {self.failed} failed, {self.skipped} skipped (done)"
        more = f", {self.elsewhere} running elsewhere" if self.elsewhere else ""
        more += f", {self.lost} taken over" if self.lost else ""
        tail = " — interrupted; run the same command again to continue" if self.interrupted else ""
        return f"{head}{more} in {_duration(self.seconds)}{tail}"


def run_study(study: Study, options: RunOptions, *, out: TextIO | None = None, err: TextIO | None = None) -> Summary:
    """Execute every run of `study` that has no ok record. Raises DeviceError, StoreError or BackendError
    (before any run starts) when the options or the results folder cannot work."""
    out, err = out or sys.stdout, err or sys.stderr
    t0 = time.perf_counter()
    backend = backend_class(options)  # ValueError for options the backend cannot use
    paths = StudyPaths.of(options.results, study.name)
    if options.dry_run:
        plan = plan_study(study, paths)
        _print_dry_run(plan, out)
        return Summary(study.name, skipped=plan.count("done"), elsewhere=plan.count("running"))

    slots = backend.plan(study, options)
    summary = Summary(study.name)
    pool: Pool | None = backend.start(study, options, slots)  # connects to dask: an unreachable cluster fails first
    try:
        paths.prepare()
        for line in paths.clean_leftovers():
            print(f"note: {line}", file=err)
        plan = plan_study(study, paths)
        for problem in plan.problems:
            print(f"warning: {problem}", file=err)
        summary.skipped, summary.elsewhere, todo = plan.count("done"), plan.count("running"), plan.todo
        print(f"{study.name}: {len(plan.runs)} runs — {summary.skipped} done, {summary.elsewhere} running elsewhere, "
              f"{len(todo)} to run on {backend.where(options, slots)}; results in {paths.root}", file=err)
        if todo:
            _execute(study, options, paths, pool, todo, summary, err)
    except KeyboardInterrupt:
        summary.interrupted = True
        pool.close(kill=True)
        pool = None
    finally:
        if pool is not None:
            pool.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _execute(study: Study, options: RunOptions, paths: StudyPaths, pool: Pool, todo: list[Run], summary: Summary,
             err: TextIO) -> None:
    from tqdm.auto import tqdm

    weight = {r.run_id: _flops(r) for r in todo}
    last_attempt = study.policy.retries + 1
    queue: deque[tuple[Run, int]] = deque((r, 1) for r in todo)
    in_flight: dict = {}
    root = os.path.abspath(paths.root)  # workers (dask: on other machines) may not share our working directory
    with tqdm(total=sum(weight.values()), unit="FLOP", unit_scale=True, file=err, desc=study.name,
              disable=not options.progress, dynamic_ncols=True, smoothing=0.0) as bar:
        bar.set_postfix_str(f"runs 0/{len(todo)}")
        finished = 0
        while queue or in_flight:
            while queue and pool.has_room():
                run, first = queue.popleft()
                slot = pool.take()
                task = RunTask(study.name, run.run_id, _execution_config(run, slot, options), root,
                               study.policy.retries, study.policy.timeout_s, first, pool.supervisor,
                               study.policy.kill_grace_s, submission=secrets.token_hex(8))
                in_flight[pool.submit(task, slot)] = (run, first, slot, task.submission)
            for future in pool.wait_any(list(in_flight)):
                run, first, slot, submission = in_flight.pop(future)
                pool.give_back(slot)
                try:
                    outcome = future.result()
                except Exception as e:  # the worker died under the run (crash, OOM kill, watchdog, lost worker)
                    pool.broken(slot)
                    # The worker may have got past its first attempt (retries happen inside it): go on from the
                    # attempt it died in, as the lock it left behind says (none: it died before claiming).
                    lock = paths.lock(run.run_id)
                    ours = lock is not None and lock.submission == submission
                    died_in = max(first, lock.attempt or first) if ours else first
                    error = (lock.killed if ours and lock.killed else
                             f"worker died: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
                    if died_in < last_attempt:
                        bar.write(f"retry {run.run_id} {run.label()}: {error}", file=err)
                        queue.appendleft((run, died_in + 1))
                        continue
                    outcome = _fail_from_here(study, paths, run, error, died_in)
                finished += 1
                _tally(summary, outcome)
                bar.update(weight[run.run_id])
                bar.set_postfix_str(f"runs {finished}/{len(todo)}, failed {summary.failed}")
                bar.write(_outcome_line(run, outcome), file=err)


def _execution_config(run: Run, slot: Slot | None, options: RunOptions) -> speedrun.TrainConfig:
    """The run's config with this machine's execution-only fields; its run_id does not change."""
    changes = {}
    if slot is not None and slot.device is not None:
        changes["device"] = slot.device
    if slot is not None and slot.threads is not None and run.config.threads is None:
        changes["threads"] = slot.threads
    if options.data_dir is not None:
        changes["data_dir"] = os.path.abspath(options.data_dir)
    config = run.config.replace(**changes)
    assert speedrun.run_id(config) == run.run_id, f"execution fields {sorted(changes)} changed run {run.run_id}'s id"
    return config


def _fail_from_here(study: Study, paths: StudyPaths, run: Run, error: str, attempts: int) -> RunOutcome:
    """Record a run whose worker died on its last attempt (the worker could not write its own record)."""
    held = claim(paths.lock_path(run.run_id), run.run_id)
    if isinstance(held, LockInfo):  # a dask worker on another host may still hold it until its heartbeat expires
        return RunOutcome(run.run_id, "failed", attempts, error + " (no record written: its lock is still held)")
    try:
        if paths.read(run.run_id).state == "ok":
            return RunOutcome(run.run_id, "done")
        task = RunTask(study.name, run.run_id, run.config, str(paths.root), study.policy.retries, None)
        write_failed(paths, task, error, attempts)
    finally:
        held.release()
    return RunOutcome(run.run_id, "failed", attempts, error)


def _tally(summary: Summary, outcome: RunOutcome) -> None:
    if outcome.state == "ok":
        summary.ok += 1
    elif outcome.state == "failed":
        summary.failed += 1
        summary.errors[outcome.run_id] = outcome.error or "unknown error"
    elif outcome.state == "done":
        summary.skipped += 1
    elif outcome.state == "elsewhere":
        summary.elsewhere += 1
    else:
        summary.lost += 1


def _outcome_line(run: Run, o: RunOutcome) -> str:
    if o.state == "ok":
        acc = f" ema_val_acc {o.ema_val_acc:.4f}" if isinstance(o.ema_val_acc, float) else ""
        tries = f" after {o.attempts} attempts" if o.attempts > 1 else ""
        return f"ok      {run.run_id} {run.label()}{acc} in {_duration(o.seconds)}{tries}"
    if o.state == "failed":
        tries = f" after {o.attempts} attempt(s)" if o.attempts else ""
        return f"FAILED  {run.run_id} {run.label()}{tries}: {o.error}"
    if o.state == "done":
        return f"skipped {run.run_id} {run.label()}: finished by another scheduler"
    if o.state == "elsewhere":
        return f"skipped {run.run_id} {run.label()}: running elsewhere ({o.where})"
    return f"stopped {run.run_id} {run.label()}: {o.error}"


def _print_dry_run(plan: Plan, out: TextIO) -> None:
    words = {"done": "done", "failed": "to run (failed before)", "running": "running elsewhere",
             "corrupt": "to run (unreadable record)", "pending": "to run"}
    print(f"{plan.study.name}: {len(plan.runs)} runs — {plan.count('done')} done, {plan.count('running')} running "
          f"elsewhere, {len(plan.todo)} to run (dry run: nothing is executed)", file=out)
    for run in plan.runs:
        state = plan.state[run.run_id]
        holder = f" [{plan.holder[run.run_id]}]" if state == "running" else ""
        print(f"  {words[state]:<26} {run.run_id}  {run.label()}{holder}", file=out)
    for problem in plan.problems:
        print(f"  warning: {problem}", file=out)


def _flops(run: Run) -> int:
    try:
        return int(speedrun.estimate_train_flops(run.config))
    except Exception:  # noqa: BLE001 — progress weighting only; count the run as one unit instead
        return 1


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"
