"""`--backend slurm` (its Pool is backends.SlurmPool): runs on Slurm jobs that dask-jobqueue submits, scales and cancels (the `slurm` extra).

Each job holds one dask worker per GPU (`gpus_per_job`; one worker on CPU-only jobs), each with one thread, and
a worker pulls run after run until the grid is done, so a short run does not pay a Slurm job's queueing and
start-up. The scheduler (this process, on the login node) scales the number of jobs to the work left with dask's
adaptive scaling (never more than `max_jobs`) and cancels every job when the study ends or is interrupted.

This module: the job settings and the job script. Settings come from the study file's [slurm] table and the command line (which wins), e.g.

    [slurm]
    partition = "gpu"          # sbatch -p
    gpus_per_job = 4           # --gres=gpu:4, and 4 workers in the job, one per GPU (slurmworker.py pins them)
    time = "04:00:00"          # sbatch -t, per job: a worker's runs must fit in it
    account = "my-lab"         # sbatch -A
    sbatch = ["--constraint=a100", "--qos=normal"]   # extra #SBATCH lines
    max_jobs = 8               # never more jobs than this at once
    memory = "32GB"            # per job (default: 16GB per GPU, 4GB for a CPU job)
    cores_per_job = 16         # CPU cores per job (default: 8 per GPU, 1 for a CPU job)
    interface = "ib0"          # the network the workers reach the scheduler on (default: dask's choice)

`studies run STUDY --backend slurm --dry-run` prints the job script without submitting anything. Without
dask-jobqueue installed, `--backend slurm` says which extra to install.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from .spec import Study

__all__ = ["SLURM_KEYS", "SLURM_MISSING", "add_arguments", "from_args", "check_slurm_table", "slurm_settings",
           "job_kwargs"]

# key -> (type check, what is allowed); the same names in [slurm], on the command line (--slurm-KEY) and here.
SLURM_KEYS: dict[str, tuple[Any, str]] = {
    "partition": (str, "a partition name (sbatch -p)"),
    "gpus_per_job": (int, "an integer >= 0: GPUs per job, one dask worker each (0: one CPU worker per job)"),
    "time": (str, "a time limit per job as sbatch takes it, e.g. \"04:00:00\" or \"1-00:00:00\""),
    "account": (str, "an account to charge (sbatch -A)"),
    "sbatch": (list, "a list of extra #SBATCH arguments, e.g. [\"--qos=normal\", \"--constraint=a100\"]"),
    "max_jobs": (int, "an integer >= 1: the most jobs at once (default 4)"),
    "memory": (str, "memory per job, e.g. \"32GB\""),
    "cores_per_job": (int, "an integer >= 1: CPU cores per job"),
    "interface": (str, "a network interface name the workers reach the scheduler on, e.g. \"ib0\""),
}
_TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")
_DEFAULTS = {"gpus_per_job": 0, "time": "01:00:00", "max_jobs": 4, "sbatch": []}


def add_arguments(parser) -> None:
    """--partition, --gpus-per-job, --time, --account, --sbatch (repeatable), ... : one flag per SLURM_KEYS key."""
    group = parser.add_argument_group("--backend slurm (override the study's [slurm] table)")
    for key, (kind, allowed) in SLURM_KEYS.items():
        flag = "--" + key.replace("_", "-")
        if kind is list:
            group.add_argument(flag, dest=f"slurm_{key}", action="append", metavar="ARG",
                               help=f"one extra #SBATCH argument, repeatable (write it as {flag}=--qos=normal)")
        else:
            group.add_argument(flag, dest=f"slurm_{key}", type=kind, metavar=key.upper(), help=allowed)


def from_args(args) -> dict:
    """The slurm settings given on the command line."""
    return {key: getattr(args, f"slurm_{key}") for key in SLURM_KEYS if getattr(args, f"slurm_{key}") is not None}


def check_slurm_table(table: dict, problem) -> dict:
    """The study file's [slurm] table, checked (each problem reported through `problem(key, message)`)."""
    good = {}
    for key, value in table.items():
        message = _problem(key, value)
        if message:
            problem(f"slurm.{key}", message)
        else:
            good[key] = list(value) if key == "sbatch" else value
    return good


def _problem(key: str, value: Any) -> str | None:
    if key not in SLURM_KEYS:
        return f"unknown key; valid: {', '.join(SLURM_KEYS)}"
    kind, allowed = SLURM_KEYS[key]
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)
                        or value < (0 if key == "gpus_per_job" else 1)):
        return f"is {value!r}; expected {allowed}"
    if kind is str and (not isinstance(value, str) or not value.strip()):
        return f"is {value!r}; expected {allowed}"
    if kind is list and (not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("-")
                                                                  for v in value)):
        return f"is {value!r}; expected {allowed}"
    if key == "time" and not _TIME.match(value):
        return f"is {value!r}; expected {allowed}"
    return None


def slurm_settings(study: Study, command_line: dict) -> dict:
    """Defaults, then the study's [slurm], then the command line. ValueError for a bad command-line value."""
    for key, value in command_line.items():
        message = _problem(key, value)
        if message:
            raise ValueError(f"--{key.replace('_', '-')}: {message}")
    return {**_DEFAULTS, **study.slurm, **command_line}


def job_kwargs(study: Study, settings: dict) -> dict:
    """Keyword arguments of dask-jobqueue's SLURMCluster / SLURMJob for these settings."""
    gpus = settings["gpus_per_job"]
    workers = max(1, gpus)
    checkout = str(Path(__file__).resolve().parents[1])
    prologue = [f"export PYTHONPATH={checkout}${{PYTHONPATH:+:$PYTHONPATH}}"]  # this checkout's studies/speedrun
    if os.environ.get("CIFAR10_DIR"):
        prologue.append(f"export CIFAR10_DIR={os.environ['CIFAR10_DIR']}")
    extra = [f"--gres=gpu:{gpus}"] if gpus else []
    kwargs = dict(
        name=f"studies-{study.name}", job_name=f"studies-{study.name}", processes=workers,
        # dask-jobqueue gives each worker cores/processes threads: one thread, one run at a time per worker. The
        # job's CPUs (for data loading and torch's own threads) are asked for with job_cpu (--cpus-per-task).
        cores=workers, job_cpu=max(workers, settings.get("cores_per_job", 8 * gpus if gpus else 1)),
        memory=settings.get("memory", f"{16 * gpus}GB" if gpus else "4GB"),
        walltime=settings["time"], queue=settings.get("partition"), account=settings.get("account"),
        job_extra_directives=extra + list(settings["sbatch"]), job_script_prologue=prologue,
        python=sys.executable, interface=settings.get("interface"),
        # One thread per worker: one run at a time each; the preload gives each worker its own GPU of the job.
        worker_extra_args=["--preload", "studies.slurmworker"],
    )
    return kwargs


SLURM_MISSING = ("--backend slurm needs dask-jobqueue: pip install 'hlb-scaling[slurm]' (or pip install -e '.[slurm]' "
            "in a checkout)")
