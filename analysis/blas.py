"""Limit BLAS to one thread while fitting.

L-BFGS-B calls LAPACK on 5×5 matrices thousands of times per fit; OpenBLAS's worker threads only add wake-up
latency there, measured at 6-10× the whole fit time on a busy 2-core machine. threadpoolctl does this for any
BLAS when installed; without it, a best-effort fallback finds the OpenBLAS libraries this process loaded
(Linux /proc/self/maps, as numpy's and scipy's wheels bundle them) and sets their thread count directly.
"""
from __future__ import annotations

import contextlib
import ctypes
from functools import lru_cache

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - depends on the environment
    threadpool_limits = None

__all__ = ["one_blas_thread"]

# OpenBLAS builds name their thread setter with these prefixes/suffixes (scipy-openblas: scipy_ and 64_).
_SYMBOLS = [(f"{p}openblas_get_num_threads{s}", f"{p}openblas_set_num_threads{s}")
            for p in ("", "scipy_") for s in ("", "64_")]


def one_blas_thread():
    """A context manager in which BLAS uses one thread; restores the previous setting on exit."""
    if threadpool_limits is not None:
        return threadpool_limits(limits=1, user_api="blas")
    return _openblas_one_thread()


@contextlib.contextmanager
def _openblas_one_thread():
    handles = _openblas_handles()
    before = [get() for get, _ in handles]
    for _, set_threads in handles:
        set_threads(1)
    try:
        yield
    finally:
        for (_, set_threads), n in zip(handles, before):
            set_threads(n)


@lru_cache(maxsize=1)
def _openblas_handles() -> tuple:
    """(get, set) thread-count functions of every OpenBLAS loaded so far; empty where none can be found."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return ()
    handles = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                get, set_threads = getattr(lib, get_name), getattr(lib, set_name)
                get.restype, set_threads.argtypes = ctypes.c_int, [ctypes.c_int]
                handles.append((get, set_threads))
                break
    return tuple(handles)
