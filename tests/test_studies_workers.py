"""loky replaces a worker whose memory grew 300 MB past its size after its first task (where psutil is present).
A study's worker grows by design (CUDA context, cached data set, compiled steps), and a replacement starts cold,
so the scheduler keeps its workers unless told otherwise, and says so; with --recycle-workers MB, a replacement
is logged. Real loky workers, real memory growth."""
from __future__ import annotations

import os
import time

import pytest

from studies.backends import LokyPool
from studies.devices import Slot

psutil = pytest.importorskip("psutil", reason="loky only watches worker memory where psutil is installed")

_HELD: list[bytes] = []


def pid_now() -> int:
    return os.getpid()


def grow(mib: int) -> int:
    """Hold `mib` MiB of touched memory for the rest of the worker's life; wait past loky's 1 s check interval."""
    _HELD.append(b"\x01" * (mib * 2**20))
    time.sleep(1.3)
    return os.getpid()


def _pids_around_growth(pool: LokyPool, mib: int) -> tuple[int, int]:
    slot = Slot(0, None, None)
    try:
        first = pool._executor(slot).submit(pid_now).result(timeout=120)  # loky measures its reference size after it
        pool._executor(slot).submit(grow, mib).result(timeout=120)
        time.sleep(0.5)
        return first, pool._executor(slot).submit(pid_now).result(timeout=120)
    finally:
        pool.close()


def test_a_worker_that_grows_is_kept_and_says_so(capfd):
    first, after = _pids_around_growth(LokyPool([Slot(0, None, None)]), 350)
    assert after == first, "the worker was replaced after its memory grew: it would start cold"
    err = capfd.readouterr().err
    assert f"worker {first}" in err and "--recycle-workers" in err, err


def test_recycle_workers_replaces_and_logs_it(capfd):
    first, after = _pids_around_growth(LokyPool([Slot(0, None, None)], recycle_workers_mb=50), 100)
    assert after != first, "--recycle-workers 50: a worker 100 MiB larger is replaced"
    err = capfd.readouterr().err
    assert f"worker {first} grew" in err and "replaced by a fresh worker" in err, err


def test_recycle_workers_option_reaches_the_pool():
    from studies import RunOptions
    from studies.cli import build_parser

    args = build_parser().parse_args(["run", "quick", "--recycle-workers", "500"])
    assert args.recycle_workers == 500.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "quick", "--recycle-workers", "-1"])
    slots = [Slot(0, None, 1), Slot(1, None, 1)]
    pool = LokyPool.start(None, RunOptions(jobs=2, recycle_workers_mb=500.0), slots)
    assert isinstance(pool, LokyPool) and pool.recycle_workers_mb == 500.0
    assert LokyPool.start(None, RunOptions(jobs=2), slots).recycle_workers_mb is None
