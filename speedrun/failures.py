"""What a failed run's exception says about the process it failed in, and how to free that process's device
memory after an out-of-memory error.

- "oom": the allocator could not get memory. The process is sound; freeing what it caches (compiled steps, data
  sets on the device, the allocator's cached blocks) may make a retry fit.
- "sticky": a kernel fault (device-side assert, illegal address, launch failure, ...). The CUDA context is
  corrupted for the rest of the process's life: every later CUDA call fails, so no retry may run in it.
- "cuda": any other CUDA error. The context may or may not be usable; a retry belongs in a fresh process.
- None: not a device error (bad data, a bug, a timeout): the caller's usual retry applies.
"""
from __future__ import annotations

import gc

import torch

__all__ = ["failure_kind", "free_device_memory", "STICKY_CUDA_ERRORS"]

# cudaError_t codes after which the context is unusable (CUDA runtime API, "sticky" errors), with the phrase
# cudaGetErrorString gives each: torch's AcceleratorError carries the code as `error_code`; older torches raise a
# RuntimeError that only has the phrase.
STICKY_CUDA_ERRORS = {
    214: "uncorrectable ECC error encountered",
    700: "an illegal memory access was encountered",
    702: "the launch timed out and was terminated",
    710: "device-side assert triggered",
    714: "hardware stack error",
    715: "an illegal instruction was encountered",
    716: "misaligned address",
    717: "operation not supported on global/shared address space",
    718: "invalid program counter",
    719: "unspecified launch failure",
}


def failure_kind(exc: BaseException) -> str | None:
    """"oom", "sticky", "cuda" or None for `exc` or any exception it was raised from (compile errors wrap)."""
    accelerator = getattr(torch, "AcceleratorError", ())
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, torch.OutOfMemoryError):
            return "oom"
        message = str(exc)
        if isinstance(exc, accelerator) or (isinstance(exc, RuntimeError) and message.startswith("CUDA error")):
            code = getattr(exc, "error_code", None)
            if code in STICKY_CUDA_ERRORS or (code is None and any(p in message for p in STICKY_CUDA_ERRORS.values())):
                return "sticky"
            return "cuda"
        exc = exc.__cause__ or exc.__context__
    return None


def free_device_memory() -> None:
    """Drop this process's compiled steps and cached data sets, collect their garbage and hand the allocator's
    cached blocks back to the driver; the next run builds and loads again (seconds) instead of failing."""
    from .data import clear_datasets
    from .engine import clear_programs

    clear_programs()
    clear_datasets()
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
