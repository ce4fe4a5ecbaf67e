"""Limit BLAS to one thread while fitting.

A fit calls BLAS on 5×5 to 11×11 matrices thousands of times; OpenBLAS's worker threads only add wake-up
latency there, measured at 6-10× the whole fit time on a busy 2-core machine. threadpoolctl (a dependency)
sets the limit for whichever BLAS numpy and scipy loaded.
"""
from __future__ import annotations

from threadpoolctl import threadpool_limits

__all__ = ["one_blas_thread"]


def one_blas_thread():
    """A context manager in which BLAS uses one thread; restores the previous setting on exit."""
    return threadpool_limits(limits=1, user_api="blas")
