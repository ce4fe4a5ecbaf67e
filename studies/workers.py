"""What a loky worker does as it starts: watch the scheduler (task.watch_scheduler), and apply the study's choice
about loky's memory check.

Where psutil is installed, loky measures each worker after its first task and, once it has grown 300 MB past
that, replaces it with a fresh process, silently. A study's worker grows by design: its CUDA context, the data
set it keeps on the device and the compiled steps of every width it has trained are what makes its later runs
fast. A replacement starts cold, so by default the check is off and each worker says so once; with
`--recycle-workers MB` it is on at that limit, and each replacement is logged with the growth that caused it.
"""
from __future__ import annotations

import os

from .task import log_stderr, watch_scheduler

__all__ = ["start_worker", "memory_policy"]


def start_worker(scheduler_pid: int, recycle_workers_mb: float | None) -> None:
    """loky's initializer for a study's worker."""
    watch_scheduler(scheduler_pid)
    log_stderr(memory_policy(recycle_workers_mb))


def memory_policy(recycle_workers_mb: float | None) -> str:
    """Apply the choice to loky's worker loop in this process (it reads these module globals after each task);
    return the line that says what was chosen."""
    from joblib.externals.loky import process_executor as loky

    pid = os.getpid()
    if not getattr(loky, "_USE_PSUTIL", False):
        return (f"worker {pid}: kept for the whole study (psutil is absent, so loky does not watch its memory"
                f"{'; --recycle-workers has no effect' if recycle_workers_mb is not None else ''})")
    if not all(hasattr(loky, name) for name in ("_MAX_MEMORY_LEAK_SIZE", "_get_memory_usage")):
        return f"worker {pid}: this loky's memory check is unknown to studies; loky may replace the worker"
    if recycle_workers_mb is None:
        loky._USE_PSUTIL = False  # loky then only runs gc.collect() between tasks, as it does without psutil
        return (f"worker {pid}: kept for the whole study however much its memory grows (its CUDA context, data and "
                f"compiled steps are reused); loky's replacement after 300 MB of growth is off "
                f"(--recycle-workers MB turns it on)")
    limit = int(recycle_workers_mb * 2**20)
    loky._MAX_MEMORY_LEAK_SIZE = limit
    measure = loky._get_memory_usage
    reference: list[int] = []

    def measured(worker_pid, force_gc=False):
        # loky's first call takes the reference size (after the first task); a later call after a forced
        # collection that is still past the limit is the one on which loky ends the worker.
        size = measure(worker_pid, force_gc=force_gc)
        if not reference:
            reference.append(size)
        elif force_gc and size - reference[0] >= limit:
            log_stderr(f"worker {worker_pid} grew {(size - reference[0]) / 2**20:.0f} MiB past its size after its "
                       f"first run (--recycle-workers {recycle_workers_mb:g}); loky ends it, and it is replaced by "
                       f"a fresh worker (cold: no CUDA context, data or compiled steps)")
        return size

    loky._get_memory_usage = measured
    return (f"worker {pid}: replaced by loky once its memory grows {recycle_workers_mb:g} MiB past its size after "
            f"its first run (--recycle-workers)")
