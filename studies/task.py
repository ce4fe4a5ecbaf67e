"""One run, executed where it lands (this process, a loky worker or a dask worker): claim its lock, train with
retries and a per-attempt timeout, write its record and log, release the lock.

`execute_run` never raises for a failed run — it returns a RunOutcome — because joblib/loky and dask treat an
exception as the end of a whole batch, and because retries must happen here, where the failure is seen.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import speedrun
from speedrun import TrainConfig

from .fsutil import host, pid_alive
from .locks import HEARTBEAT_S, Claim, LockInfo, claim
from .logfile import RunLog
from .store import StudyPaths

__all__ = ["RunTask", "RunOutcome", "execute_run", "watch_scheduler", "RunTimeout", "LockLost"]


class RunTimeout(RuntimeError):
    """An attempt ran past the study's timeout_s."""


class LockLost(RuntimeError):
    """Another scheduler broke this run's lock (our heartbeat stalled past the TTL); we stop without a record."""


@dataclass(frozen=True)
class RunTask:
    study: str
    run_id: str
    config: TrainConfig  # execution fields (device, data_dir, threads) already applied
    root: str  # <results>/<study>
    retries: int  # extra attempts after the first
    timeout_s: float | None
    first_attempt: int = 1  # > 1 when the scheduler re-submits after a worker died
    watch_pid: int | None = None  # the scheduler's pid, for a worker on its host (see watch_scheduler)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    state: str  # "ok", "failed", "done" (an ok record appeared meanwhile), "elsewhere" (locked), "lost"
    attempts: int = 0
    error: str | None = None
    seconds: float = 0.0
    where: str | None = None  # who holds the lock, for "elsewhere"
    ema_val_acc: float | None = None


def execute_run(task: RunTask) -> RunOutcome:
    """Run `task` to an ok or failed record, unless someone else holds or has finished it. Problems outside
    training (the results folder became unwritable, the disk filled up) come back as a failed outcome without
    a record, so the run is tried again next time."""
    try:
        return _execute(task)
    except Exception as e:  # noqa: BLE001 — raising would look like a dead worker to the scheduler
        return RunOutcome(task.run_id, "failed", 0, f"{_one_line(e)} (no record written)")


def _execute(task: RunTask) -> RunOutcome:
    paths = StudyPaths(Path(task.root))
    held = claim(paths.lock_path(task.run_id), task.run_id, supervisor=task.watch_pid)
    if isinstance(held, LockInfo):
        return RunOutcome(task.run_id, "elsewhere", where=held.describe())
    beat = _Heartbeat(held)
    beat.start()
    try:
        # Checked under the lock: a record written by whoever held the lock before us is final.
        if paths.read(task.run_id).state == "ok":
            return RunOutcome(task.run_id, "done")
        return _attempts(task, paths, beat)
    finally:
        beat.stop()
        held.release()


def _attempts(task: RunTask, paths: StudyPaths, beat: "_Heartbeat") -> RunOutcome:
    t0 = time.perf_counter()
    last = task.retries + 1
    error = "not attempted"
    with RunLog(paths.log_path(task.run_id)) as log:
        for attempt in range(task.first_attempt, last + 1):
            log.attempt(attempt, last, task.config)
            deadline = time.monotonic() + task.timeout_s if task.timeout_s else None

            def progress(row: dict) -> None:
                log.epoch(row)
                if beat.lost:
                    raise LockLost(f"lock {paths.lock_path(task.run_id)} was taken over by another scheduler")
                if deadline is not None and time.monotonic() > deadline:
                    raise RunTimeout(f"attempt exceeded timeout_s={task.timeout_s:g} after epoch {row.get('epoch')}"
                                     f" of {task.config.epochs}")

            try:
                record = speedrun.train(task.config, progress=progress)
            except LockLost as e:
                log.note(f"stopped: {e}")
                return RunOutcome(task.run_id, "lost", attempt, str(e), time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 — any failure of a run is recorded, never propagated
                error = _one_line(e)
                log.failure(error, traceback.format_exc())
                continue
            record.update(study=task.study, attempts=attempt)
            if beat.lost:
                log.note("finished, but the lock was taken over meanwhile; not writing the record")
                return RunOutcome(task.run_id, "lost", attempt, "lock lost", time.perf_counter() - t0)
            paths.write_record(record)
            log.success(record)
            return RunOutcome(task.run_id, "ok", attempt, None, time.perf_counter() - t0,
                              ema_val_acc=record.get("ema_val_acc"))
        write_failed(paths, task, error, last)
        log.note(f"gave up after {last} attempt(s); wrote a failed record")
        return RunOutcome(task.run_id, "failed", last, error, time.perf_counter() - t0)


def write_failed(paths: StudyPaths, task: RunTask, error: str, attempts: int) -> None:
    paths.write_record(speedrun.failed_record(task.config, error, study=task.study, attempts=attempts))


def _one_line(e: BaseException) -> str:
    message = " ".join(str(e).split())
    return f"{type(e).__name__}: {message}" if message else type(e).__name__


def watch_scheduler(pid: int) -> None:
    """Worker initializer (loky): end this worker process as soon as scheduler `pid` is gone, whether the
    worker is training, idle or still starting, so no run goes on unsupervised and no process is orphaned.
    A lock it held, owned by a dead pid, is then broken by the next scheduler."""

    def loop() -> None:
        while pid_alive(pid):
            time.sleep(1.0)
        _log_stderr(f"scheduler pid {pid} is gone; worker {os.getpid()} exits")
        os._exit(70)

    threading.Thread(target=loop, name="studies-watch-scheduler", daemon=True).start()


class _Heartbeat:
    """Keeps a claimed lock fresh while the run trains, and notices if it was taken over."""

    def __init__(self, held: Claim):
        self.held, self.lost = held, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lock-heartbeat-{held.path.stem}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_S
        while not self._stop.wait(1.0):
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_S
                if not self.held.refresh():
                    self.lost = True


def _log_stderr(message: str) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        os.write(2, f"[studies {host()}:{os.getpid()} {stamp}] {message}\n".encode())
    except OSError:
        pass
