"""Failures that do not poison a slot: after an out-of-memory error the worker frees what it caches and retries;
after a CUDA error (sticky or not) no attempt runs again in that process: a loky worker ends itself and the
scheduler's dead-worker path retries in a fresh one. CUDA errors are raised by a stand-in for train() (there is
no GPU here); the workers, locks, logs and the scheduler are real."""
from __future__ import annotations

import io
import os
import re

import pytest
import torch

import speedrun
from speedrun import data as data_module
from speedrun import engine
from speedrun.failures import failure_kind
from studies import RunOptions, StudyPaths, load_study, run_study
from studies.backends import LokyPool
from studies.task import RunTask, execute_run
from tests.test_studies_run import TINY, records, write_study


def _cuda_error(kind: str) -> Exception:
    message = {"sticky": "CUDA error: an illegal memory access was encountered",
               "cuda": "CUDA error: invalid device ordinal"}[kind]
    return torch.AcceleratorError(message)


def test_failure_kind_reads_the_exception_and_its_causes():
    assert failure_kind(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")) == "oom"
    assert failure_kind(_cuda_error("sticky")) == "sticky"
    assert failure_kind(torch.AcceleratorError("CUDA error: device-side assert triggered")) == "sticky"
    assert failure_kind(_cuda_error("cuda")) == "cuda"
    coded = torch.AcceleratorError("CUDA error: something new")
    coded.error_code = 710  # what torch attaches: cudaErrorAssert
    assert failure_kind(coded) == "sticky"
    try:
        try:
            raise _cuda_error("sticky")
        except Exception as inner:
            raise RuntimeError("backend compiler failed") from inner
    except RuntimeError as wrapped:
        assert failure_kind(wrapped) == "sticky"
    assert failure_kind(ValueError("CUDA error: not really")) is None
    assert failure_kind(RuntimeError("shapes do not match")) is None


def _task(tmp_path, retries: int = 1, watch_pid: int | None = None) -> tuple[RunTask, StudyPaths]:
    paths = StudyPaths.of(tmp_path / "r", "s")
    paths.prepare()
    config = speedrun.TrainConfig(**TINY)
    task = RunTask("s", speedrun.run_id(config), config, str(paths.root), retries, None, watch_pid=watch_pid)
    return task, paths


def test_out_of_memory_frees_cached_steps_and_data_before_the_retry(tmp_path, monkeypatch):
    task, paths = _task(tmp_path)
    real, seen = speedrun.train, []

    def train(config, **kwargs):
        seen.append(("held" in engine._PROGRAMS, "held" in data_module._CACHE))
        if len(seen) == 1:
            monkeypatch.setitem(engine._PROGRAMS, "held", object())  # what a worker caches between runs
            monkeypatch.setitem(data_module._CACHE, "held", object())
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(config, **kwargs)

    monkeypatch.setattr(speedrun, "train", train)
    outcome = execute_run(task)
    assert (outcome.state, outcome.attempts) == ("ok", 2), outcome
    assert seen == [(False, False), (False, False)], "the retry must start with the caches freed"
    assert "# out of memory: freed" in paths.log_path(task.run_id).read_text()


@pytest.mark.parametrize("kind", ["sticky", "cuda"])
def test_cuda_error_outside_a_worker_is_not_retried_in_the_same_process(tmp_path, monkeypatch, kind):
    """--jobs 1 (the scheduler's own process) or a dask worker: nothing to end, so the run fails at once."""
    task, paths = _task(tmp_path, retries=2)
    calls = []

    def train(config, **kwargs):
        calls.append(1)
        raise _cuda_error(kind)

    monkeypatch.setattr(speedrun, "train", train)
    outcome = execute_run(task)
    assert (outcome.state, outcome.attempts, len(calls)) == ("failed", 1, 1), outcome
    assert "not retried in this process" in outcome.error
    (record,) = records(paths.runs).values()
    assert record["status"] == "failed" and record["attempts"] == 1


def fault_first_attempt(task: RunTask, kind: str):
    """Runs in a loky worker: the first attempt of a run hits a CUDA error there."""
    if task.first_attempt == 1:
        def train(config, **kwargs):
            raise _cuda_error(kind)

        speedrun.train = train
    return execute_run(task)


@pytest.mark.parametrize("kind", ["sticky", "cuda"])
def test_cuda_error_ends_the_worker_and_the_retry_runs_in_a_fresh_one(tmp_path, monkeypatch, kind):
    class FaultyLoky(LokyPool):
        def submit(self, task, slot):
            return self._executor(slot).submit(fault_first_attempt, task, kind)

    monkeypatch.setattr(LokyPool, "start", classmethod(lambda cls, study, options, slots: FaultyLoky(slots)))
    path = write_study(tmp_path, "gpu", {"seed": [0]}, policy={"retries": 1})
    err = io.StringIO()
    summary = run_study(load_study(path), RunOptions(results=str(tmp_path / "r"), jobs=2, progress=False),
                        out=io.StringIO(), err=err)
    assert (summary.ok, summary.failed) == (1, 0), err.getvalue()
    (record,) = records(tmp_path / "r" / "gpu" / "runs").values()
    assert record["status"] == "ok" and record["attempts"] == 2
    assert "retry " in err.getvalue() and "CUDA error" in err.getvalue(), err.getvalue()
    (log,) = (tmp_path / "r" / "gpu" / "logs").glob("*.log")
    text = log.read_text()
    pids = re.findall(r"^# attempt \d/2 on \S+ pid (\d+)", text, flags=re.M)
    assert len(pids) == 2 and pids[0] != pids[1] and str(os.getpid()) not in pids, text
    assert re.search(r"^# killed: .*CUDA error.*fresh process", text, flags=re.M), text
