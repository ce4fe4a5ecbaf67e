"""Which devices runs go to on this machine, decided without initialising CUDA in the scheduler process.

GPUs are counted from `--devices`, else `$CUDA_VISIBLE_DEVICES`, else `nvidia-smi -L`. With GPUs there is one
slot per GPU (at most one run per GPU at a time; a run's `device` becomes `cuda:<i>`); without, `--jobs` CPU
slots share the cores.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Slot", "plan_slots", "parse_devices", "check_devices", "detect_gpus", "gpu_names", "DeviceError"]


class DeviceError(ValueError):
    """--jobs/--devices do not fit the machine or the study; the message says what is allowed."""


@dataclass(frozen=True)
class Slot:
    index: int
    device: str | None  # "cuda:<i>" to pin runs to a GPU; None: keep the study's device (cpu, auto, ...)
    threads: int | None  # CPU threads per run when several CPU runs share the machine


def parse_devices(text: str) -> list[int]:
    """'0,1,3' -> [0, 1, 3]."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        ids = []
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise DeviceError(f"--devices {text!r}: expected distinct GPU indices separated by commas, e.g. --devices 0,1")
    return ids


def detect_gpus() -> list[int]:
    """Indices of the GPUs this process may use (as cuda:<i> numbers them), without touching CUDA."""
    return list(range(_count_gpus() or 0))


def _count_gpus() -> int | None:
    """How many GPUs this process sees (CUDA_VISIBLE_DEVICES, else nvidia-smi); None when nothing can tell."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [v.strip() for v in visible.split(",") if v.strip()]
        if not entries or entries[0] == "-1":
            return 0
        return len(entries)
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def check_devices(devices: list[int]) -> None:
    """Refuse --devices indices past the GPUs this process sees. They number GPUs as cuda:<i> does, *within*
    CUDA_VISIBLE_DEVICES: under Slurm, CUDA_VISIBLE_DEVICES=2,3 makes the job's GPUs cuda:0 and cuda:1, and
    --devices 2,3 would fail every run with "invalid device ordinal". Unchecked when nothing can count them."""
    count = _count_gpus()
    if count is None or all(i < count for i in devices):
        return
    given = ",".join(map(str, devices))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    within = f"CUDA_VISIBLE_DEVICES={visible}" if visible is not None else "nvidia-smi's list"
    if count == 0:
        raise DeviceError(f"--devices {given}: no GPU is visible to this process ({within}); drop --devices, or "
                          f"run where GPUs are visible")
    raise DeviceError(f"--devices {given}: this process sees {count} GPU(s), cuda:0 to cuda:{count - 1}; --devices "
                      f"counts within {within}, as cuda:<i> does: use indices from 0 to {count - 1} (--devices "
                      f"{','.join(map(str, range(count)))} for all of them), or leave --devices out")


def gpu_names() -> dict[int, str]:
    """cuda:<i> index -> GPU name as the driver reports it (the same string torch.cuda.get_device_name gives),
    from `nvidia-smi`, so CUDA is never initialised here. Empty when nvidia-smi is missing or says nothing."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    physical = {}
    for line in out.splitlines():
        index, _, name = line.partition(",")
        if index.strip().isdigit() and name.strip():
            physical[int(index)] = name.strip()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return physical
    # cuda:<i> is the i-th visible GPU; entries are physical indices (UUIDs cannot be mapped here: skip them)
    entries = [v.strip() for v in visible.split(",") if v.strip()]
    return {i: physical[int(e)] for i, e in enumerate(entries) if e.isdigit() and int(e) in physical}


def plan_slots(study_devices: set[str], jobs: int | None, devices: list[int] | None) -> list[Slot]:
    """The slots for a study whose runs ask for `study_devices` (e.g. {"auto"})."""
    if jobs is not None and jobs < 1:
        raise DeviceError(f"--jobs {jobs}: expected an integer >= 1")
    wants_gpu = study_devices <= {"auto", "cuda"}
    if devices is not None and not wants_gpu:
        raise DeviceError(f"--devices given, but the study fixes device to {', '.join(sorted(study_devices))}; "
                          f"remove --devices or set device to 'auto' or 'cuda' in the study")
    if devices is not None:
        check_devices(devices)
    gpus = devices if devices is not None else (detect_gpus() if wants_gpu else [])
    if gpus:
        if jobs is not None and jobs > len(gpus):
            raise DeviceError(f"--jobs {jobs} but only {len(gpus)} GPU(s) ({', '.join(map(str, gpus))}): at most one "
                              f"run per GPU at a time; use --jobs {len(gpus)} or fewer, or list more with --devices")
        return [Slot(i, f"cuda:{g}", None) for i, g in enumerate(gpus[: jobs or len(gpus)])]
    n = jobs or 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // n) if n > 1 else None  # split the cores so parallel runs do not oversubscribe
    return [Slot(i, None, threads) for i in range(n)]
