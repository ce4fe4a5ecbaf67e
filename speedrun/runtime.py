"""Where and in what number format a run executes: the precision table and the device helpers.

Adding a precision is one entry in PRECISIONS (plus any code its dtype needs); config validation, training,
the benchmark and the GEMM probe all read the table.
"""
from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, ContextManager

import torch

__all__ = ["Precision", "PRECISIONS", "AUTO_PRECISION", "precision_names", "resolve_precision", "resolve_device",
           "synchronize", "device_name", "prepare_device"]


@dataclass(frozen=True)
class Precision:
    name: str
    storage: torch.dtype  # dtype of the network's weights and of the data on the device
    autocast: torch.dtype | None  # compute dtype under torch.autocast; None: compute in the storage dtype
    devices: tuple[str, ...]  # device types (torch.device.type) that can train in it
    # dtype of the per-sample cross-entropy (the logits are cast to it); fp32 unless the entry says otherwise
    loss_dtype: torch.dtype = torch.float32

    @property
    def compute(self) -> torch.dtype:
        """The dtype the matrix products run in."""
        return self.autocast or self.storage

    def autocast_context(self, device: torch.device) -> Callable[[], ContextManager]:
        """A factory of the context every forward pass runs under (a no-op without autocast)."""
        if self.autocast is None:
            return contextlib.nullcontext
        dtype = self.autocast
        return lambda: torch.autocast(device_type=device.type, dtype=dtype)


# Listed in the order the GEMM probe reports them. fp16: the whole network and data in half, with no autocast
# and no loss scaler, and the loss in half too (the reference's choice); CPUs have no fast fp16 kernels, so it is
# refused there. bf16: fp32 weights and data, products in bf16 under autocast, the loss in fp32 (autocast leaves
# the logits in bf16, and they are cast up for it).
PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("fp32", torch.float32, None, ("cuda", "mps", "cpu"), loss_dtype=torch.float32),
    Precision("bf16", torch.float32, torch.bfloat16, ("cuda", "mps", "cpu"), loss_dtype=torch.float32),
    Precision("fp16", torch.float16, None, ("cuda", "mps"), loss_dtype=torch.float16),
)}
# What precision="auto" picks per device type: pure fp16 on CUDA as the reference; anything else fp32.
AUTO_PRECISION = {"cuda": "fp16"}
_AUTO_FALLBACK = "fp32"


def precision_names() -> tuple[str, ...]:
    """The values TrainConfig.precision accepts."""
    return ("auto", *PRECISIONS)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The table entry `name` stands for on `device`; a clear error where the device cannot train in it."""
    if name == "auto":
        return PRECISIONS[AUTO_PRECISION.get(device.type, _AUTO_FALLBACK)]
    if name not in PRECISIONS:
        raise RuntimeError(f"precision={name!r} is unknown; use one of {', '.join(precision_names())}")
    precision = PRECISIONS[name]
    if device.type not in precision.devices:
        usable = [p.name for p in PRECISIONS.values() if device.type in p.devices]
        raise RuntimeError(f"precision={name!r} is not supported on {device.type.upper()}; use {' or '.join(usable)}")
    return precision


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda, then mps, then cpu; a named device that is not here is a clear error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} but CUDA is not available here; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device='mps' but MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def prepare_device(device: torch.device) -> None:
    """Execution settings for training on `device`. On CUDA, cuDNN benchmarks its convolution algorithms for
    each new shape and keeps the fastest. That changes which kernels run, not what they compute: the algorithms
    differ only in floating-point summation order (as cuDNN's default choice already varies between GPUs and
    versions, and its weight gradients are not bit-reproducible anyway), so it is an execution choice like
    the GPU model; the GPU proof's side-by-side checks that accuracy stays the seed's (Welch and TOST). The
    seed leaves it off (commented out, "can go either way"); the benchmarking costs the first steps of each
    shape, once per process.

    On CUDA it also binds the process to `device`, before anything touches CUDA: torch.cuda.graph, the caching
    allocator and torch.cuda.synchronize() act on the *current* device, which is GPU 0 in a new process, so a
    worker given cuda:1 would otherwise open a context on GPU 0 and sync (and graph-capture on) the wrong card."""
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that host timers measure it (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def device_name(device: torch.device, threads: int | None = None) -> str:
    """The GPU's name, or the CPU model with a thread count: `threads`, else torch's count at the time of the call
    (never a cached one: a process may change it between runs)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return f"{_cpu_model()} ({threads or torch.get_num_threads()} threads)"


@lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
