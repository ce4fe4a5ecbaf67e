"""The backend registry: one table in studies/backends.py; a new backend is an entry plus its class, and the
scheduler and command line know backends only through the table and the abstract Pool."""
from __future__ import annotations

import concurrent.futures as cf
import json
from pathlib import Path

import pytest

from studies import RunOptions, load_study, run_study
from studies.backends import BACKENDS, Pool, backend_class
from studies.cli import build_parser, main
from studies.task import execute_run
from test_studies_run import write_study

ROOT = Path(__file__).resolve().parents[1]


class ThreadPool(Pool):
    """A backend written only against Pool's contract: two threads in this process, its own option rule."""

    name = "threads"
    started: list = []

    @classmethod
    def check_options(cls, options) -> None:
        if options.devices is not None:
            raise ValueError("--devices: the threads backend has no GPUs; drop --devices")

    @classmethod
    def plan(cls, study, options):
        from studies.devices import Slot

        return [Slot(0, None, 1), Slot(1, None, 1)]

    @classmethod
    def start(cls, study, options, slots):
        pool = cls(slots)
        cls.started.append(pool)
        return pool

    @classmethod
    def where(cls, options, slots):
        return f"{len(slots)} threads"

    def __init__(self, slots):
        super().__init__(slots)
        self.executor = cf.ThreadPoolExecutor(max_workers=len(slots))
        self.submitted = 0

    def submit(self, task, slot):
        self.submitted += 1
        return self.executor.submit(execute_run, task)

    def close(self, kill: bool = False) -> None:
        self.executor.shutdown(wait=not kill)


def test_a_new_backend_is_one_table_entry_and_its_class(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(BACKENDS, ThreadPool.name, ThreadPool)
    path = write_study(tmp_path, "threaded", {"seed": [0, 1, 2]})
    results = tmp_path / "r"
    assert main(["run", str(path), "--results", str(results), "--backend", "threads", "--no-progress"]) == 0
    assert "3 ok, 0 failed" in capsys.readouterr().out
    assert ThreadPool.started and ThreadPool.started[-1].submitted == 3
    records = [json.loads(p.read_text()) for p in (results / "threaded" / "runs").glob("*.json")]
    assert sorted(r["config"]["seed"] for r in records) == [0, 1, 2] and {r["status"] for r in records} == {"ok"}
    # its own option check, reported like every other option error (exit 2, nothing run)
    assert main(["run", str(path), "--results", str(tmp_path / "r2"), "--backend", "threads", "--devices", "0"]) == 2
    assert "the threads backend has no GPUs" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_the_command_line_takes_its_choices_from_the_table(monkeypatch):
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions
                  if a.dest == "backend")
    assert tuple(action.choices) == tuple(BACKENDS) == ("loky", "dask", "slurm")
    with pytest.raises(ValueError, match=r"--backend 'nope': expected one of loky, dask"):
        backend_class(RunOptions(backend="nope"))


def test_pool_is_abstract_and_the_scheduler_asks_it():
    with pytest.raises(TypeError, match="abstract"):
        type("Half", (Pool,), {"name": "half"})(None)
    scheduler = (ROOT / "studies" / "scheduler.py").read_text()
    for leak in ("LokyPool", "DaskPool", "InProcessPool", "capacity", '"dask"', '"loky"'):
        assert leak not in scheduler, f"scheduler.py must not know backend {leak}; ask the Pool"
    cli = (ROOT / "studies" / "cli.py").read_text()
    assert '("loky", "dask")' not in cli, "cli.py must take the backend names from backends.BACKENDS"


def test_dask_rejects_loky_options_without_connecting(tmp_path):
    study = load_study(write_study(tmp_path, "opts", {"seed": [0]}))
    with pytest.raises(ValueError, match="--jobs/--devices apply to --backend loky"):
        run_study(study, RunOptions(results=str(tmp_path / "r"), backend="dask", address="tcp://127.0.0.1:9", jobs=2))
    with pytest.raises(ValueError, match="is for --backend dask"):
        run_study(study, RunOptions(results=str(tmp_path / "r"), address="tcp://127.0.0.1:9"))
    assert not (tmp_path / "r").exists()
