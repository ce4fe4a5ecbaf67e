"""One run, executed where it lands (this process, a loky worker or a dask worker): claim its lock, train with
retries and a per-attempt timeout, write its record and log, release the lock.

The timeout is checked when an epoch ends. An attempt still running `kill_grace_s` after it — stuck inside an
epoch, or hung in native code where no Python check can run — is ended with its worker process, in loky
workers (the scheduler on this host sees the dead worker and retries or records the failure; see
the lock file's `attempt` and `killed` fields). Runs in the scheduler's own process (`--jobs 1`) and on dask workers only get the
epoch-end check: ending those processes would take the scheduler or a shared dask worker down with the run.

Device errors (speedrun.failures): after an out-of-memory error the process frees its compiled steps, cached data
and allocator cache before the next attempt. After a CUDA error no attempt runs again in the process that saw it
(a sticky one leaves the GPU context unusable, and every later run on that slot would fail in seconds): a loky
worker ends itself, and the scheduler's dead-worker path retries in a fresh process; elsewhere the run fails.

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

from common.states import FINAL_STATUSES, is_final_status

from .fsutil import host, is_disk_full, pid_alive
from .locks import HEARTBEAT_S, Claim, LockInfo, claim
from .logfile import KILLED_PREFIX, RunLog
from .store import StudyPaths

__all__ = ["RunTask", "RunOutcome", "execute_run", "watch_scheduler", "log_stderr", "RunTimeout", "LockLost",
           "KILLED_EXIT", "CUDA_EXIT"]

KILLED_EXIT = 75  # exit status of a worker ended by the watchdog
CUDA_EXIT = 76  # ... and of one that ended itself after a CUDA error, so the run's next attempt gets a fresh process


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
    kill_grace_s: float | None = None  # end the worker this long past timeout_s (loky workers only; None: never)
    submission: str | None = None  # the scheduler's token for this submit, written into the lock it claims


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    # "ok", "failed", "diverged" (a final record: the loss went non-finite), "done" (an ok record appeared
    # meanwhile), "elsewhere" (locked), "lost" (lock taken over), "nospace" (the results disk is full; no record)
    state: str
    attempts: int = 0
    error: str | None = None
    seconds: float = 0.0
    where: str | None = None  # who holds the lock, for "elsewhere"
    ema_val_acc: float | None = None


def execute_run(task: RunTask) -> RunOutcome:
    """Run `task` to an ok, failed or diverged record, unless someone else holds or has finished it. Problems
    outside training come back without a record, so the run is tried again next time: a full disk as "nospace"
    (the scheduler then stops starting runs), anything else (an unwritable folder) as "failed"."""
    try:
        return _execute(task)
    except Exception as e:  # noqa: BLE001 — raising would look like a dead worker to the scheduler
        if is_disk_full(e):
            return RunOutcome(task.run_id, "nospace", 0, StudyPaths(Path(task.root)).no_space_message(e))
        return RunOutcome(task.run_id, "failed", 0, f"{_one_line(e)} (no record written)")


def _execute(task: RunTask) -> RunOutcome:
    paths = StudyPaths(Path(task.root))
    held = claim(paths.lock_path(task.run_id), task.run_id, supervisor=task.watch_pid, submission=task.submission)
    if isinstance(held, LockInfo):
        return RunOutcome(task.run_id, "elsewhere", where=held.describe())
    beat = _Heartbeat(held)
    beat.start()
    try:
        # Checked under the lock: an ok or diverged record written by whoever held the lock before us is final.
        if paths.read(task.run_id).state in FINAL_STATUSES:
            return RunOutcome(task.run_id, "done")
        return _attempts(task, paths, held, beat)
    finally:
        beat.stop()
        held.release()


def _attempts(task: RunTask, paths: StudyPaths, held: Claim, beat: "_Heartbeat") -> RunOutcome:
    t0 = time.perf_counter()
    last = task.retries + 1
    tried = last  # attempts spent when the loop ends without a record
    error = "not attempted"
    with RunLog(paths.log_path(task.run_id)) as log:
        for attempt in range(task.first_attempt, last + 1):
            held.update(attempt=attempt)  # read by the scheduler if this process dies during the attempt
            log.attempt(attempt, last, task.config)
            deadline = time.monotonic() + task.timeout_s if task.timeout_s else None

            def progress(row: dict) -> None:
                log.epoch(row)
                if beat.lost:
                    raise LockLost(f"lock {paths.lock_path(task.run_id)} was taken over by another scheduler")
                if deadline is not None and time.monotonic() > deadline:
                    raise RunTimeout(f"attempt exceeded timeout_s={task.timeout_s:g} after epoch {row.get('epoch')}"
                                     f" of {task.config.epochs}")

            watchdog = _Watchdog.arm(task, attempt, log, held)
            try:
                try:
                    record = speedrun.train(task.config, progress=progress)
                finally:
                    if watchdog is not None:
                        watchdog.cancel()
                if not is_final_status(record.get("status")):  # a failure reported, not raised: the same
                    raise RuntimeError(record.get("error") or f"train() returned status {record.get('status')!r}")
            except LockLost as e:
                log.note(f"stopped: {e}")
                return RunOutcome(task.run_id, "lost", attempt, str(e), time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 — any failure of a run is recorded, never propagated
                if is_disk_full(e):
                    raise  # the log could not be written: not the run's fault, and no retry can fix it
                error = _one_line(e)
                log.failure(error, traceback.format_exc())
                kind = speedrun.failure_kind(e)
                if kind == "oom":
                    speedrun.free_device_memory()
                    log.note("out of memory: freed this process's compiled steps, cached data and allocator cache "
                             "before the next attempt")
                elif kind is not None:  # the GPU context may be unusable: no attempt may run in this process
                    what = "a sticky CUDA error (the GPU context is unusable)" if kind == "sticky" else "a CUDA error"
                    if _in_worker(task):
                        _end_worker(held, log, f"{what} in attempt {attempt}: {error}; worker pid {os.getpid()} "
                                               f"ended so that the run goes on in a fresh process", CUDA_EXIT)
                    error = f"{error} ({what}: not retried in this process)"
                    log.note(f"{what}: not retried in this process (pid {os.getpid()})")
                    tried = attempt
                    break
                continue
            record.update(study=task.study, attempts=attempt)
            if beat.lost:
                log.note("finished, but the lock was taken over meanwhile; not writing the record")
                return RunOutcome(task.run_id, "lost", attempt, "lock lost", time.perf_counter() - t0)
            paths.write_record(record)
            if record.get("status") == "diverged":  # final: the same config and seed would diverge again
                log.note(f"diverged: {record.get('error')}; recorded as final, not retried")
                return RunOutcome(task.run_id, "diverged", attempt, record.get("error") or "non-finite loss",
                                  time.perf_counter() - t0)
            log.success(record)
            return RunOutcome(task.run_id, "ok", attempt, None, time.perf_counter() - t0,
                              ema_val_acc=record.get("ema_val_acc"))
        write_failed(paths, task, error, tried)
        log.note(f"gave up after {tried} attempt(s); wrote a failed record")
        return RunOutcome(task.run_id, "failed", tried, error, time.perf_counter() - t0)


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
        log_stderr(f"scheduler pid {pid} is gone; worker {os.getpid()} exits")
        os._exit(70)

    threading.Thread(target=loop, name="studies-watch-scheduler", daemon=True).start()


class _Watchdog:
    """Ends this worker process when an attempt runs `kill_grace_s` past its timeout without reaching an epoch
    end. Its lock stays behind with a dead owner, which the next claim breaks; the reason it writes into the lock
    tells the scheduler why the worker died (and the log tells the reader)."""

    def __init__(self, task: RunTask, attempt: int, log: RunLog, held: Claim):
        self.task, self.attempt, self.log, self.held = task, attempt, log, held
        self._guard = threading.Lock()
        self._finished = False
        self._timer = threading.Timer(task.timeout_s + task.kill_grace_s, self._fire)
        self._timer.daemon = True

    @classmethod
    def arm(cls, task: RunTask, attempt: int, log: RunLog, held: Claim) -> "_Watchdog | None":
        """A started watchdog where one applies: a timeout is set and this is a loky worker, not the scheduler."""
        if not task.timeout_s or task.kill_grace_s is None or task.watch_pid in (None, os.getpid()):
            return None
        dog = cls(task, attempt, log, held)
        dog._timer.start()
        return dog

    def cancel(self) -> None:
        with self._guard:  # blocks for good if _fire has decided: the attempt must not finish after that
            self._finished = True
        self._timer.cancel()

    def _fire(self) -> None:
        self._guard.acquire()  # never released when we go on to end the process
        if self._finished:
            self._guard.release()
            return
        t = self.task
        reason = (f"RunTimeout: attempt {self.attempt} was still running {t.kill_grace_s:g}s past "
                  f"timeout_s={t.timeout_s:g} inside an epoch (stuck or hung); its worker pid {os.getpid()} was ended")
        log_stderr(f"run {t.run_id}: attempt {self.attempt} ran {t.kill_grace_s:g}s past timeout_s; ending worker")
        _end_worker(self.held, self.log, reason, KILLED_EXIT)


def _in_worker(task: RunTask) -> bool:
    """Whether this is a loky worker of the scheduler on this host (not the scheduler itself, not dask's)."""
    return task.watch_pid not in (None, os.getpid())


def _end_worker(held: Claim, log: RunLog, reason: str, status: int) -> None:
    """End this worker process now. The reason goes into the lock, where the scheduler's dead-worker path reads it
    (it retries from the lock's attempt in a fresh worker, or records the reason), and into the log."""
    try:
        held.update(killed=reason)
    except OSError:
        pass  # the scheduler then reports a dead worker without the reason; the log note below may still land
    log.note(f"{KILLED_PREFIX}{reason}")
    os._exit(status)


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


def log_stderr(message: str) -> None:
    """One stamped line on this process's stderr (a worker's goes to the scheduler's terminal)."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        os.write(2, f"[studies {host()}:{os.getpid()} {stamp}] {message}\n".encode())
    except OSError:
        pass
