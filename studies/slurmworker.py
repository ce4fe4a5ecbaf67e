"""dask worker preload for `--backend slurm`: give each worker of a job its own GPU.

dask-jobqueue starts a job's workers with one `dask worker --nworkers N --name NAME` command, so all N see every
GPU Slurm gave the job (CUDA_VISIBLE_DEVICES lists them) and "auto" would put every run on the first. dask names
the workers NAME-0 ... NAME-(N-1); worker i keeps only the i-th GPU. This runs when the worker starts, before any
run imports CUDA, so the variable still takes effect.
"""
from __future__ import annotations

import os

__all__ = ["dask_setup", "gpu_for"]


def gpu_for(worker_name: str, visible: str | None) -> str | None:
    """The one GPU (an entry of CUDA_VISIBLE_DEVICES) for the worker named `worker_name`; None: leave it alone
    (no GPUs, a single one, or a name without a worker index)."""
    gpus = [g for g in (visible or "").split(",") if g.strip()]
    index = str(worker_name).rpartition("-")[2]
    if len(gpus) < 2 or not index.isdigit():
        return None
    return gpus[int(index) % len(gpus)]


def dask_setup(worker) -> None:
    gpu = gpu_for(worker.name, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
