"""Where tasks execute: in this process (`--jobs 1`, the debug path), in long-lived loky worker processes (one
machine), or on a dask.distributed cluster (many machines). All three take a RunTask and give back a future of
its RunOutcome, so the scheduler loop is the same for each.

loky: one single-worker executor per slot, so a GPU slot's runs always land in the same process (its CUDA
context and cached data set are reused, and a crash breaks only that slot). dask: tasks go to the cluster's
scheduler, which places each on a worker with a free thread; start one worker per GPU with `--nthreads 1`.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import secrets
from typing import Any

from .devices import Slot
from .task import RunTask, execute_run, watch_scheduler

__all__ = ["Pool", "InProcessPool", "LokyPool", "DaskPool", "BackendError"]


class BackendError(RuntimeError):
    """The backend cannot start (no scheduler at --address, dask missing); the message says what to do."""


class Pool:
    capacity: int | None  # tasks in flight at once; None: submit everything, the cluster queues them

    def submit(self, task: RunTask, slot: Slot | None) -> Any: ...

    def wait_any(self, futures: list) -> set: ...

    def broken(self, slot: Slot | None) -> None:
        """A task on `slot` died with its worker: make the slot usable again."""

    def close(self, kill: bool = False) -> None: ...


class InProcessPool(Pool):
    """Runs each task here, at submit time: pdb, prints and monkeypatching all work."""

    capacity = 1

    def submit(self, task: RunTask, slot: Slot | None) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(execute_run(task))
        except Exception as e:  # noqa: BLE001 — the scheduler treats it like a dead worker
            future.set_exception(e)
        return future

    def wait_any(self, futures: list) -> set:
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def close(self, kill: bool = False) -> None:
        pass


class LokyPool(Pool):
    def __init__(self, slots: list[Slot]):
        from joblib.externals.loky import ProcessPoolExecutor

        self._make = ProcessPoolExecutor
        self.capacity = len(slots)
        self._executors: dict[int, Any] = {}

    def _executor(self, slot: Slot):
        if slot.index not in self._executors:
            self._executors[slot.index] = self._make(max_workers=1, initializer=watch_scheduler,
                                                     initargs=(os.getpid(),))
        return self._executors[slot.index]

    def submit(self, task: RunTask, slot: Slot | None) -> cf.Future:
        return self._executor(slot).submit(execute_run, task)

    def wait_any(self, futures: list) -> set:
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def broken(self, slot: Slot | None) -> None:
        executor = self._executors.pop(slot.index, None)
        if executor is not None:
            executor.shutdown(wait=False, kill_workers=True)

    def close(self, kill: bool = False) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=not kill, kill_workers=kill)
        self._executors.clear()


class DaskPool(Pool):
    capacity = None

    def __init__(self, address: str, study: str):
        try:
            from distributed import Client
        except ImportError:
            raise BackendError("--backend dask needs dask.distributed: pip install 'dask[distributed]'") from None
        try:
            self.client = Client(address)  # waits distributed.comm.timeouts.connect (dask config) for it
        except (OSError, TimeoutError) as e:
            raise BackendError(f"no dask scheduler answered at {address} ({type(e).__name__}: {e}); start one with "
                               f"`dask scheduler` and workers with `dask worker {address} --nthreads 1` "
                               f"(see studies/README.md)") from None
        self.study = study

    def submit(self, task: RunTask, slot: Slot | None):
        key = f"studies-{self.study}-{task.run_id}-a{task.first_attempt}-{secrets.token_hex(3)}"
        return self.client.submit(execute_run, task, key=key, pure=False)

    def wait_any(self, futures: list) -> set:
        from distributed import wait

        return set(wait(futures, return_when="FIRST_COMPLETED").done)

    def close(self, kill: bool = False) -> None:
        self.client.close()
