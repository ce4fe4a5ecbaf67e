"""Executing a list of runs on a started Pool: submit while the pool has room, collect outcomes, resubmit runs
whose worker died, stop starting runs when the results disk is full, and tally everything into a Summary.

The scheduler calls this once for a plain study and once per round for an adaptive one.
"""
from __future__ import annotations

import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import speedrun

from common.states import FINAL_STATUSES, RECORD_STATUSES

from .backends import Pool
from .devices import Slot
from .fsutil import host, is_disk_full, pid_alive
from .locks import LockInfo, break_if_stale, claim
from .spec import Run, Study
from .store import StudyPaths
from .task import RunOutcome, RunTask, write_failed

__all__ = ["Summary", "execute_runs", "duration"]


@dataclass
class Summary:
    study: str
    ok: int = 0
    failed: int = 0
    diverged: int = 0  # stopped at a non-finite loss: a final record, reported as failed, never retried
    skipped: int = 0  # already done before we started, or finished by another scheduler meanwhile
    elsewhere: int = 0  # claimed by another scheduler; not run here
    lost: int = 0  # our lock was taken over mid-run; the other scheduler finishes it
    seconds: float = 0.0
    interrupted: bool = False
    no_space: str | None = None  # why runs stopped being started: the results disk is full (one line)
    errors: dict[str, str] = field(default_factory=dict)  # run_id -> error, for failed runs
    divergences: dict[str, str] = field(default_factory=dict)  # run_id -> reason, for diverged runs
    adaptive: str | None = None  # the adaptive policy's final word (why it stopped), when one ran
    adaptive_problem: bool = False  # it stopped because the law could not answer, not by its own rules

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if self.no_space:
            return 2
        return 1 if (self.failed or self.lost or self.diverged or self.adaptive_problem) else 0

    def line(self) -> str:
        head = f"{self.study}: {self.ok} ok, {self.failed} failed, "
        head += f"{self.diverged} diverged, " if self.diverged else ""
        head += f"{self.skipped} skipped (done)"
        more = f", {self.elsewhere} running elsewhere" if self.elsewhere else ""
        more += f", {self.lost} taken over" if self.lost else ""
        tail = " — interrupted; run the same command again to continue" if self.interrupted else ""
        return f"{head}{more} in {duration(self.seconds)}{tail}"


def execute_runs(study: Study, paths: StudyPaths, pool: Pool, todo: list[Run], summary: Summary, err: TextIO, *,
                 data_dir: str | None = None, progress: bool = True,
                 on_record: Callable[[Path, str], None] | None = None) -> None:
    """Run `todo` on `pool` until every run has an outcome, or the disk is full (then `summary.no_space`).
    `on_record(study folder, run_id)` is called in this process as each run's final record lands (the live export)."""
    from tqdm.auto import tqdm

    weight = {r.run_id: _flops(r) for r in todo}
    last_attempt = study.policy.retries + 1
    queue: deque[tuple[Run, int]] = deque((r, 1) for r in todo)
    in_flight: dict = {}
    root = os.path.abspath(paths.root)  # workers (dask: on other machines) may not share our working directory
    try:
        with tqdm(total=sum(weight.values()), unit="FLOP", unit_scale=True, file=err, desc=study.name,
                  disable=not progress, dynamic_ncols=True, smoothing=0.0) as bar:
            bar.set_postfix_str(f"runs 0/{len(todo)}")
            finished = 0
            while queue or in_flight:
                while queue and pool.has_room() and not summary.no_space:
                    summary.no_space = paths.space_problem()  # cheap (statvfs): do not start what cannot be saved
                    if summary.no_space:
                        break
                    run, first = queue.popleft()
                    slot = pool.take()
                    task = RunTask(study.name, run.run_id, _execution_config(run, slot, data_dir), root,
                                   study.policy.retries, study.policy.timeout_s, first, pool.supervisor,
                                   study.policy.kill_grace_s, submission=secrets.token_hex(8))
                    in_flight[pool.submit(task, slot)] = (run, first, slot, task.submission)
                if summary.no_space and queue:
                    bar.write(f"stopping: {summary.no_space}; not starting {len(queue)} more run(s), waiting for "
                              f"{len(in_flight)} under way", file=err)
                    queue.clear()
                if not in_flight:
                    break
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
                        if died_in < last_attempt and not summary.no_space:
                            bar.write(f"retry {run.run_id} {run.label()}: {error}", file=err)
                            queue.appendleft((run, died_in + 1))
                            continue
                        outcome = _fail_from_here(study, paths, run, error, died_in)
                    finished += 1
                    _tally(summary, outcome)
                    bar.update(weight[run.run_id])
                    bar.set_postfix_str(f"runs {finished}/{len(todo)}, failed {summary.failed}")
                    bar.write(_outcome_line(run, outcome), file=err)
                    if on_record is not None and outcome.state in RECORD_STATUSES:
                        on_record(paths.root, run.run_id)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (Slurm preemption and scancel send it before SIGKILL)
        pool.close(kill=True)
        _free_locks(paths, [(run.run_id, submission) for run, _, _, submission in in_flight.values()])
        raise


def _free_locks(paths: StudyPaths, held: list[tuple[str, str]], wait_s: float = 5.0) -> None:
    """Remove the locks our killed workers on this host left, once their processes are gone, so that schedulers
    on other hosts (which cannot see that a pid died) take the runs over now instead of after LOCK_TTL_S."""
    deadline = time.monotonic() + wait_s
    for run_id, submission in held:
        lock = paths.lock(run_id)
        if lock is None or lock.submission != submission or lock.host != host() or lock.pid is None:
            continue  # not ours, or held on another host (a dask worker): its heartbeat stops and it expires
        while pid_alive(lock.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        break_if_stale(lock)  # only if its owner is dead by now: a live one keeps its lock


def _execution_config(run: Run, slot: Slot | None, data_dir: str | None) -> speedrun.TrainConfig:
    """The run's config with this machine's execution-only fields; its run_id does not change."""
    changes = {}
    if slot is not None and slot.device is not None:
        changes["device"] = slot.device
    if slot is not None and slot.threads is not None and run.config.threads is None:
        changes["threads"] = slot.threads
    if data_dir is not None:
        changes["data_dir"] = os.path.abspath(data_dir)
    config = run.config.replace(**changes)
    assert speedrun.run_id(config) == run.run_id, f"execution fields {sorted(changes)} changed run {run.run_id}'s id"
    return config


def _fail_from_here(study: Study, paths: StudyPaths, run: Run, error: str, attempts: int) -> RunOutcome:
    """Record a run whose worker died on its last attempt (the worker could not write its own record)."""
    held = claim(paths.lock_path(run.run_id), run.run_id)
    if isinstance(held, LockInfo):  # a dask worker on another host may still hold it until its heartbeat expires
        return RunOutcome(run.run_id, "failed", attempts, error + " (no record written: its lock is still held)")
    try:
        if paths.read(run.run_id).state in FINAL_STATUSES:
            return RunOutcome(run.run_id, "done")
        task = RunTask(study.name, run.run_id, run.config, str(paths.root), study.policy.retries, None)
        write_failed(paths, task, error, attempts)
    except OSError as e:
        if not is_disk_full(e):
            raise
        return RunOutcome(run.run_id, "nospace", attempts, paths.no_space_message(e))
    finally:
        held.release()
    return RunOutcome(run.run_id, "failed", attempts, error)


def _tally(summary: Summary, outcome: RunOutcome) -> None:
    if outcome.state == "ok":
        summary.ok += 1
    elif outcome.state == "failed":
        summary.failed += 1
        summary.errors[outcome.run_id] = outcome.error or "unknown error"
    elif outcome.state == "diverged":
        summary.diverged += 1
        summary.divergences[outcome.run_id] = outcome.error or "non-finite loss"
    elif outcome.state == "nospace":
        summary.no_space = summary.no_space or outcome.error
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
        return f"ok      {run.run_id} {run.label()}{acc} in {duration(o.seconds)}{tries}"
    if o.state == "failed":
        tries = f" after {o.attempts} attempt(s)" if o.attempts else ""
        return f"FAILED  {run.run_id} {run.label()}{tries}: {o.error}"
    if o.state == "diverged":
        return f"DIVERGED {run.run_id} {run.label()}: {o.error} (final: training is deterministic, not retried)"
    if o.state == "nospace":
        return f"stopped {run.run_id} {run.label()}: {o.error} (no record written; it runs again next time)"
    if o.state == "done":
        return f"skipped {run.run_id} {run.label()}: finished by another scheduler"
    if o.state == "elsewhere":
        return f"skipped {run.run_id} {run.label()}: running elsewhere ({o.where})"
    return f"stopped {run.run_id} {run.label()}: {o.error}"


def _flops(run: Run) -> int:
    try:
        return int(speedrun.train_flops(run.config))
    except Exception:  # noqa: BLE001 — progress weighting only; count the run as one unit instead
        return 1


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"
