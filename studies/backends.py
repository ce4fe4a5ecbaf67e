"""Where tasks execute, as one table: `BACKENDS` maps each `--backend` name to its Pool class. Adding a backend is
one entry here plus its class; the command line takes its choices from the table and the scheduler only talks to
the abstract `Pool`.

- loky: one machine. Long-lived single-worker loky processes, one per slot (a GPU, or a share of the CPU cores),
  so a GPU slot's runs always land in the same process (its CUDA context and cached data set are reused, and a
  crash breaks only that slot). With one CPU slot or `--jobs 1` the runs execute in this process instead
  (`InProcessPool`, the debug path: pdb, prints and monkeypatching work).
- dask: many machines. Tasks go to a dask.distributed scheduler, which places each on a worker with a free
  thread; start one worker per GPU with `--nthreads 1`. Needs the `dask` extra.
- slurm: Slurm jobs that dask-jobqueue submits and scales, one worker per GPU (slurm.py). Needs the `slurm` extra.

Every pool takes a RunTask and gives back a future of its RunOutcome, so the scheduler loop is the same for each.
"""
from __future__ import annotations

import abc
import concurrent.futures as cf
import os
import secrets
import shutil
from typing import Any, ClassVar

from .devices import Slot, plan_slots
from .slurm import SLURM_MISSING, job_kwargs, slurm_settings
from .spec import Study
from .task import RunTask, execute_run
from .workers import start_worker

__all__ = ["Pool", "InProcessPool", "LokyPool", "DaskPool", "SlurmPool", "BackendError", "BACKENDS", "backend_class",
           "default_backend"]


class BackendError(RuntimeError):
    """The backend cannot start (no scheduler at --address, dask missing); the message says what to do."""


class Pool(abc.ABC):
    """A set of places to run tasks. Class side: check the options and plan the slots without starting anything
    (also used by --dry-run and status); instance side: hand out slots, run tasks, report what finished."""

    name: ClassVar[str]  # the --backend value
    # Whether it sends runs to a cluster at --address; with --address and no --backend, the backend that does
    # is the default, and without --address the first one that does not (default_backend).
    uses_address: ClassVar[bool] = False

    def __init__(self, slots: list[Slot] | None):
        self._free = list(slots) if slots is not None else None  # None: no local limit, the cluster queues tasks

    # --- class side: options and placement
    @classmethod
    @abc.abstractmethod
    def check_options(cls, options) -> None:
        """Raise ValueError (naming the flag and what to do) for options this backend cannot use."""

    @classmethod
    @abc.abstractmethod
    def plan(cls, study: Study, options) -> list[Slot] | None:
        """The slots runs would use, found without starting workers or touching CUDA; None when the backend
        cannot know them here (a cluster's workers). Raises DeviceError for --jobs/--devices that do not fit."""

    @classmethod
    @abc.abstractmethod
    def start(cls, study: Study, options, slots: list[Slot] | None) -> "Pool":
        """A started pool for `slots` (from `plan`); BackendError when it cannot start."""

    @classmethod
    @abc.abstractmethod
    def where(cls, options, slots: list[Slot] | None) -> str:
        """Where runs go, in words, for the scheduler's first line."""

    @classmethod
    def describe(cls, study: Study, options) -> list[str]:
        """What --dry-run shows about the backend beyond the runs (slurm: the job script); nothing by default."""
        return []

    # --- instance side
    supervisor: int | None = None  # the pid workers watch (they exit when it dies); None: workers are not ours
    # A worker lost with its job (Slurm) leaves its run's lock behind: the scheduler must wait for runs "running
    # elsewhere" and take them over once the lock goes stale, or they would be lost until the next `studies run`.
    waits_for_stale: bool = False

    def has_room(self) -> bool:
        return self._free is None or bool(self._free)

    def take(self) -> Slot | None:
        """A free slot for the next task (None where the backend places tasks itself)."""
        return self._free.pop(0) if self._free is not None else None

    def give_back(self, slot: Slot | None) -> None:
        if self._free is not None:
            self._free.append(slot)

    @abc.abstractmethod
    def submit(self, task: RunTask, slot: Slot | None) -> Any: ...

    def wait_any(self, futures: list) -> set:
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def broken(self, slot: Slot | None) -> None:
        """A task on `slot` died with its worker: make the slot usable again."""

    @abc.abstractmethod
    def close(self, kill: bool = False) -> None: ...


class LokyPool(Pool):
    name = "loky"

    def __init__(self, slots: list[Slot], recycle_workers_mb: float | None = None):
        from joblib.externals.loky import ProcessPoolExecutor

        super().__init__(slots)
        self._make = ProcessPoolExecutor
        self._executors: dict[int, Any] = {}
        self.supervisor = os.getpid()
        self.recycle_workers_mb = recycle_workers_mb  # loky's memory-growth replacement: None keeps workers

    @classmethod
    def check_options(cls, options) -> None:
        if options.address:
            raise ValueError(f"--address {options.address} is for --backend dask; drop --backend {cls.name}")

    @classmethod
    def plan(cls, study: Study, options) -> list[Slot]:
        return plan_slots({r.config.device for r in study.runs()}, options.jobs, options.devices)

    @classmethod
    def start(cls, study: Study, options, slots: list[Slot]) -> Pool:
        if _in_process(options, slots):
            return InProcessPool(slots)
        return cls(slots, recycle_workers_mb=getattr(options, "recycle_workers_mb", None))

    @classmethod
    def where(cls, options, slots: list[Slot]) -> str:
        devices = [s.device for s in slots if s.device]
        what = ", ".join(devices) if devices else f"CPU ({len(slots)} at a time)"
        return f"{what}{' in this process' if _in_process(options, slots) else ''}"

    def _executor(self, slot: Slot):
        if slot.index not in self._executors:
            self._executors[slot.index] = self._make(max_workers=1, initializer=start_worker,
                                                     initargs=(os.getpid(), self.recycle_workers_mb))
        return self._executors[slot.index]

    def submit(self, task: RunTask, slot: Slot | None) -> cf.Future:
        return self._executor(slot).submit(execute_run, task)

    def broken(self, slot: Slot | None) -> None:
        executor = self._executors.pop(slot.index, None)
        if executor is not None:
            executor.shutdown(wait=False, kill_workers=True)

    def close(self, kill: bool = False) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=not kill, kill_workers=kill)
        self._executors.clear()


class InProcessPool(LokyPool):
    """loky's debug path: runs each task here, at submit time (one slot, so one task at a time)."""

    def __init__(self, slots: list[Slot] | None = None):
        Pool.__init__(self, slots or [Slot(0, None, None)])
        self.supervisor = None  # the task runs in the scheduler itself: nothing to watch, no worker to end

    def submit(self, task: RunTask, slot: Slot | None) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(execute_run(task))
        except Exception as e:  # noqa: BLE001 — the scheduler treats it like a dead worker
            future.set_exception(e)
        return future

    def broken(self, slot: Slot | None) -> None:
        pass

    def close(self, kill: bool = False) -> None:
        pass


class DaskPool(Pool):
    name = "dask"
    uses_address = True

    def __init__(self, address: str, study: str):
        super().__init__(None)
        try:
            from distributed import Client
        except ImportError:
            raise BackendError(_DASK_MISSING) from None
        try:
            self.client = Client(address)  # waits distributed.comm.timeouts.connect (dask config) for it
        except (OSError, TimeoutError) as e:
            raise BackendError(f"no dask scheduler answered at {address} ({type(e).__name__}: {e}); start one with "
                               f"`dask scheduler` and workers with `dask worker {address} --nthreads 1` "
                               f"(see studies/README.md)") from None
        self.study = study

    @classmethod
    def check_options(cls, options) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise BackendError(_DASK_MISSING) from None
        if not options.address:
            raise ValueError("--backend dask needs --address tcp://HOST:8786 of a running dask scheduler "
                             "(see studies/README.md)")
        if options.devices is not None or options.jobs is not None:
            raise ValueError("--jobs/--devices apply to --backend loky; with dask, start one worker per GPU "
                             "(CUDA_VISIBLE_DEVICES=i dask worker ADDRESS --nthreads 1)")

    @classmethod
    def plan(cls, study: Study, options) -> None:
        return None

    @classmethod
    def start(cls, study: Study, options, slots: None) -> Pool:
        return cls(options.address, study.name)

    @classmethod
    def where(cls, options, slots: None) -> str:
        return f"dask at {options.address}"

    def submit(self, task: RunTask, slot: Slot | None):
        key = f"studies-{self.study}-{task.run_id}-a{task.first_attempt}-{secrets.token_hex(3)}"
        return self.client.submit(execute_run, task, key=key, pure=False)

    def wait_any(self, futures: list) -> set:
        from distributed import wait

        return set(wait(futures, return_when="FIRST_COMPLETED").done)

    def close(self, kill: bool = False) -> None:
        self.client.close()


class SlurmPool(DaskPool):
    name = "slurm"
    waits_for_stale = True

    def __init__(self, study: Study, settings: dict):
        Pool.__init__(self, None)  # no local slot limit: the cluster queues the tasks
        try:
            from dask_jobqueue import SLURMCluster
            from distributed import Client
        except ImportError:
            raise BackendError(SLURM_MISSING) from None
        if shutil.which("sbatch") is None:  # else dask would retry sbatch forever and the study never start
            raise BackendError("--backend slurm submits jobs with sbatch, which is not on PATH here; run the "
                               "command on a Slurm login node (--dry-run works anywhere)")
        kwargs = job_kwargs(study, settings)
        try:
            self.cluster = SLURMCluster(**kwargs)
        except Exception as e:  # noqa: BLE001 — sbatch missing, bad settings: one line, not a traceback
            raise BackendError(f"cannot start a Slurm cluster: {type(e).__name__}: {' '.join(str(e).split())[:300]}") \
                from None
        # Jobs follow the work: dask asks for more workers while runs queue, and retires idle ones.
        self.cluster.adapt(minimum_jobs=0, maximum_jobs=settings["max_jobs"])
        self.client = Client(self.cluster)
        self.study = study.name

    @classmethod
    def check_options(cls, options) -> None:
        try:
            import dask_jobqueue  # noqa: F401
            import distributed  # noqa: F401
        except ImportError:
            raise BackendError(SLURM_MISSING) from None
        if options.address:
            raise ValueError("--address is for --backend dask; --backend slurm starts its own scheduler here")
        if options.devices is not None or options.jobs is not None:
            raise ValueError("--jobs/--devices apply to --backend loky; with slurm, set gpus_per_job and max_jobs "
                             "([slurm] in the study file, or --gpus-per-job/--max-jobs)")

    @classmethod
    def start(cls, study: Study, options, slots: None) -> "SlurmPool":
        return cls(study, slurm_settings(study, options.slurm))

    @classmethod
    def where(cls, options, slots: None) -> str:
        return "Slurm jobs through dask-jobqueue"

    @classmethod
    def describe(cls, study: Study, options) -> list[str]:
        """The job script the study's jobs would run (dry run: nothing is submitted, no scheduler starts)."""
        from dask_jobqueue.slurm import SLURMJob

        settings = slurm_settings(study, options.slurm)
        kwargs = job_kwargs(study, settings)
        script = SLURMJob(scheduler="tcp://THIS-HOST:PORT", **kwargs).job_script()
        return [f"Slurm: up to {settings['max_jobs']} job(s) of {max(1, settings['gpus_per_job'])} worker(s), "
                f"scaled to the runs left; each job runs:", *script.rstrip().splitlines()]

    def close(self, kill: bool = False) -> None:
        if self.cluster is None:
            return  # closed already (an interrupt closes the pool twice)
        try:
            self.client.close()
        finally:
            self.cluster.close()  # scancel every job: none outlives the study
            self.cluster = None


_DASK_MISSING = ("--backend dask needs dask.distributed: pip install 'hlb-scaling[dask]' (or pip install -e '.[dask]' "
                 "in a checkout)")


# The registry: --backend NAME -> its Pool class (the first entry is the default).
BACKENDS: dict[str, type[Pool]] = {cls.name: cls for cls in (LokyPool, DaskPool, SlurmPool)}


def default_backend(address: str | None) -> str:
    """The backend `studies run` takes when no --backend is given: the table's first one that uses an --address
    when one is given, else its first one that does not."""
    return next(name for name, cls in BACKENDS.items() if cls.uses_address == bool(address))


def backend_class(options) -> type[Pool]:
    """The Pool class for options.backend, after it has checked its own options (ValueError otherwise)."""
    cls = BACKENDS.get(options.backend)
    if cls is None:
        raise ValueError(f"--backend {options.backend!r}: expected one of {', '.join(BACKENDS)}")
    cls.check_options(options)
    return cls


def _in_process(options, slots: list[Slot]) -> bool:
    """One slot and --jobs 1 (or a CPU slot): run in the scheduler's process, where a debugger can follow."""
    return len(slots) == 1 and (options.jobs == 1 or slots[0].device is None)

