"""Limit BLAS to one thread while fitting.

A fit calls BLAS on 5×5 to 11×11 matrices thousands of times; OpenBLAS's worker threads only add wake-up
latency there, measured at 6-10× the whole fit time on a busy 2-core machine. threadpoolctl (a dependency)
sets the limit for whichever BLAS numpy and scipy loaded. It is imported when a fit asks for the limit, not
with the package: a machine without it (a bare GPU image running the proof) can still import `analysis`, and
its fits run with BLAS's own threads (the same results, only slower).
"""
from __future__ import annotations

import contextlib

__all__ = ["one_blas_thread"]


def one_blas_thread():
    """A context manager in which BLAS uses one thread; restores the previous setting on exit."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
