"""Running studies for real (tiny CPU runs): records, resume, dry run, status, retries and failures."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path


import speedrun
import studies
from studies import RunOptions, load_study, run_study, study_status
from studies.cli import main
from studies.locks import claim

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(width=2, epochs=1, device="cpu", data="synthetic", train_subset=128, test_subset=64, batch_size=64, threads=1)
SCHEMA = ("schema_version", "run_id", "study", "status", "error", "attempts", "config", "ema_val_acc", "val_acc",
          "train_time_s", "wall_time_s", "num_params", "train_flops", "history", "host", "started_at")


def write_study(folder: Path, name: str, grid: dict, fixed: dict | None = None, policy: dict | None = None) -> Path:
    def value(v):
        return json.dumps(v)  # TOML and JSON agree on numbers, strings, booleans and lists of them

    lines = [f'name = "{name}"', 'description = "a tiny test study"', "[grid]"]
    lines += [f"{k} = {value(v)}" for k, v in grid.items()]
    fixed = {k: v for k, v in {**TINY, **(fixed or {})}.items() if k not in grid}
    lines += ["[fixed]"] + [f"{k} = {value(v)}" for k, v in fixed.items()]
    if policy:
        lines += ["[policy]"] + [f"{k} = {value(v)}" for k, v in policy.items()]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "studies", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)


def records(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def test_grid_2x2x2_gives_8_ok_records_and_resumes(tmp_path):
    """Through the CLI in a subprocess, on real CIFAR-10 when $CIFAR10_DIR is set (passed explicitly)."""
    data_dir = os.environ.get("CIFAR10_DIR")
    fixed = {"data": "cifar10"} if data_dir else {}
    path = write_study(tmp_path, "grid", {"width": [2, 4], "epochs": [1, 2], "seed": [0, 1]}, fixed)
    extra = ["--data-dir", data_dir] if data_dir else []
    proc = run_cli("run", str(path), "--results", str(tmp_path / "results"), "--no-progress", *extra)
    assert proc.returncode == 0, proc.stderr
    assert "8 ok, 0 failed, 0 skipped" in proc.stdout, proc.stdout
    runs = tmp_path / "results" / "grid" / "runs"
    got = records(runs)
    expected = {r.run_id for r in load_study(path).runs()}
    assert set(got) == expected and len(got) == 8
    for rid, rec in got.items():
        missing = [k for k in SCHEMA if k not in rec]
        assert not missing, f"record {rid} lacks {missing}"
        assert rec["status"] == "ok" and rec["study"] == "grid" and rec["attempts"] == 1 and rec["run_id"] == rid
        assert 0.0 <= rec["ema_val_acc"] <= 1.0
        assert speedrun.run_id(speedrun.TrainConfig(**rec["config"])) == rid, "record config must hash to its id"
        assert (tmp_path / "results" / "grid" / "logs" / f"{rid}.log").read_text().count("# ok") == 1
    if data_dir:
        assert {r["config"]["data_dir"] for r in got.values()} == {data_dir}
    import pandas as pd

    frame = pd.DataFrame([{**r["config"], **{k: r[k] for k in SCHEMA if k != "config"}} for r in got.values()])
    assert frame.groupby(["width", "epochs"]).size().tolist() == [2, 2, 2, 2]
    try:
        import analysis
    except ImportError:
        analysis = None
    if analysis is not None and hasattr(analysis, "load"):
        loaded = analysis.load(tmp_path / "results" / "grid")
        loaded = getattr(loaded, "frame", loaded)
        assert len(loaded) == 8, "analysis.load must read every record the scheduler wrote"

    again = run_cli("run", str(path), "--results", str(tmp_path / "results"), "--no-progress", *extra)
    assert again.returncode == 0 and "0 ok, 0 failed, 8 skipped" in again.stdout, again.stdout + again.stderr
    assert records(runs) == got, "a second run must not touch finished records"


def test_dry_run_runs_nothing_and_lists_state(tmp_path, capsys):
    path = write_study(tmp_path, "dry", {"width": [2], "seed": [0, 1, 2]})
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results), "--dry-run", "--no-bench"]) == 0
    out = capsys.readouterr().out
    assert out.count("  to run ") == 3 and "dry run" in out
    assert not results.exists(), "a dry run must create nothing"
    study = load_study(path)
    first = study.runs()[0]
    run_study(dataclasses.replace(study, grid={"width": (2,), "seed": (0,)}),
              RunOptions(results=str(results), jobs=1, progress=False))
    assert main(["run", str(path), "--results", str(results), "--dry-run", "--no-bench"]) == 0
    out = capsys.readouterr().out
    assert f"done                       {first.run_id}" in out and out.count("  to run ") == 2
    assert len(list((results / "dry" / "runs").glob("*.json"))) == 1


def test_status_counts_each_state_per_cell(tmp_path, capsys):
    path = write_study(tmp_path, "stat", {"width": [2, 4], "seed": [0, 1, 2]})
    study = load_study(path)
    runs = {(r.point["width"], r.point["seed"]): r for r in study.runs()}
    results = tmp_path / "results"
    sub = dataclasses.replace(study, grid={"width": (2,), "seed": (0, 1)})
    assert run_study(sub, RunOptions(results=str(results), jobs=1, progress=False)).ok == 2
    paths = studies.StudyPaths.of(results, "stat")
    failed = runs[(4, 0)]
    paths.write_record(speedrun.failed_record(failed.config, "RuntimeError: boom", study="stat", attempts=2))
    held = claim(paths.lock_path(runs[(4, 1)].run_id), runs[(4, 1)].run_id)  # a live scheduler: this process
    try:
        status = study_status(study, str(results))
        cells = {c.cell["width"]: c for c in status.cells}
        assert (cells[2].done, cells[2].failed, cells[2].running, cells[2].pending) == (2, 0, 0, 1)
        assert (cells[4].done, cells[4].failed, cells[4].running, cells[4].pending) == (0, 1, 1, 1)
        assert cells[2].flops_done > 0 and cells[4].flops_done == 0
        assert cells[4].flops_remaining == 3 * speedrun.train_flops(failed.config)
        assert main(["status", str(path), "--results", str(results)]) == 0
        out = capsys.readouterr().out
        assert "done  failed  running  pending" in out and "FLOPs left" in out
        assert next(line for line in out.splitlines() if line.startswith("total")).split()[:5] == \
            ["total", "2", "1", "1", "2"]
        plan_out = main(["run", str(path), "--results", str(results), "--dry-run", "--no-bench"])
        assert plan_out == 0 and "running elsewhere" in capsys.readouterr().out
    finally:
        held.release()


def test_failing_run_is_retried_then_recorded_as_failed(tmp_path, monkeypatch, capsys):
    """In-process (--jobs 1): train is patched to fail; one run fails once then succeeds, one always fails."""
    path = write_study(tmp_path, "flaky", {"seed": [0, 1, 2]}, policy={"retries": 2})
    study = load_study(path)
    ids = [r.run_id for r in study.runs()]
    calls: dict[int, int] = {}
    real_train = speedrun.train

    def flaky_train(config, *, progress=None):
        calls[config.seed] = calls.get(config.seed, 0) + 1
        if config.seed == 1 or (config.seed == 2 and calls[2] == 1):
            raise RuntimeError(f"injected failure for seed {config.seed}\nsecond line")
        return real_train(config, progress=progress)

    monkeypatch.setattr(speedrun, "train", flaky_train)
    code = main(["run", str(path), "--results", str(tmp_path / "r"), "--jobs", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1, "a failed run must make the exit code non-zero"
    assert calls == {0: 1, 1: 3, 2: 2}, "retries = 2 means three attempts at most"
    assert "1 ok" not in out and "2 ok, 1 failed" in out and "injected failure for seed 1" in out
    got = records(tmp_path / "r" / "flaky" / "runs")
    assert got[ids[0]]["status"] == "ok" and got[ids[0]]["attempts"] == 1
    assert got[ids[2]]["status"] == "ok" and got[ids[2]]["attempts"] == 2
    bad = got[ids[1]]
    assert bad["status"] == "failed" and bad["attempts"] == 3 and bad["study"] == "flaky"
    assert bad["error"] == "RuntimeError: injected failure for seed 1 second line" and bad["ema_val_acc"] is None
    log = (tmp_path / "r" / "flaky" / "logs" / f"{ids[1]}.log").read_text()
    assert log.count("# attempt ") == 3 and "Traceback" in log and "gave up after 3" in log

    monkeypatch.setattr(speedrun, "train", real_train)  # a rerun retries the failed run, keeps the ok ones
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--jobs", "1", "--no-progress"]) == 0
    assert "1 ok, 0 failed, 2 skipped" in capsys.readouterr().out
    assert records(tmp_path / "r" / "flaky" / "runs")[ids[1]]["status"] == "ok"


def test_timeout_fails_the_attempt(tmp_path):
    path = write_study(tmp_path, "slow", {"seed": [0]}, {"epochs": 2}, policy={"retries": 1, "timeout_s": 1e-3})
    summary = run_study(load_study(path), RunOptions(results=str(tmp_path / "r"), jobs=1, progress=False))
    assert summary.failed == 1 and summary.exit_code == 1
    (rec,) = records(tmp_path / "r" / "slow" / "runs").values()
    assert rec["status"] == "failed" and rec["attempts"] == 2
    assert rec["error"].startswith("RunTimeout: attempt exceeded timeout_s=0.001 after epoch 1 of 2")


def test_lock_carries_the_attempt_and_the_kill_reason(tmp_path):
    from studies.locks import read_lock

    path = tmp_path / "run.lock"
    held = claim(path, "abc", submission="s1")
    info = read_lock(path)
    assert (info.submission, info.attempt, info.killed) == ("s1", None, None)
    assert held.update(attempt=2) and read_lock(path).attempt == 2
    assert held.update(killed="RunTimeout: stuck") and read_lock(path).killed == "RunTimeout: stuck"
    info = read_lock(path)
    assert (info.token, info.attempt, info.submission) == (held.token, 2, "s1"), "update keeps the other fields"
    other = claim(tmp_path / "other.lock", "def")
    other.token = "not-ours"
    assert not other.update(attempt=5) and read_lock(tmp_path / "other.lock").attempt is None, \
        "only the holder may rewrite a lock"


def test_attempt_stuck_inside_an_epoch_is_ended_with_its_worker(tmp_path):
    """loky workers (--jobs 2): an epoch far longer than timeout_s + kill_grace_s never reaches the epoch-end
    check, so the watchdog ends the worker; the scheduler retries in a fresh worker, then records the failure."""
    path = write_study(tmp_path, "stuck", {"seed": [0]},
                       {"width": 16, "train_subset": 8192, "test_subset": 256, "batch_size": 512},
                       policy={"retries": 1, "timeout_s": 0.5, "kill_grace_s": 1})
    proc = run_cli("run", str(path), "--results", str(tmp_path / "r"), "--jobs", "2", "--no-progress")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "0 ok, 1 failed" in proc.stdout and "retry " in proc.stderr, proc.stdout + proc.stderr
    (rec,) = records(tmp_path / "r" / "stuck" / "runs").values()
    assert rec["status"] == "failed" and rec["attempts"] == 2
    assert rec["error"].startswith("RunTimeout: attempt 2 was still running 1s past timeout_s=0.5 inside an epoch")
    (log,) = (tmp_path / "r" / "stuck" / "logs").glob("*.log")
    lines = log.read_text().splitlines()
    assert [line.split(" on ")[0] for line in lines if line.startswith("# attempt ")] == ["# attempt 1/2",
                                                                                            "# attempt 2/2"]
    assert sum(line.startswith("# killed: ") for line in lines) == 2
    assert not any(line.strip().startswith("1 ") for line in lines), "no epoch may have finished"
    assert not list((tmp_path / "r" / "stuck" / "locks").iterdir())


def test_runtime_error_in_worker_processes_gives_failed_records_and_exit_1(tmp_path):
    """Real CIFAR-10 requested from an empty folder: valid config, fails at run time, in loky workers."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    path = write_study(tmp_path, "nodata", {"seed": [0, 1]}, {"data": "cifar10"}, policy={"retries": 1})
    proc = run_cli("run", str(path), "--results", str(tmp_path / "r"), "--jobs", "2", "--data-dir", str(empty),
                   "--no-progress")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "0 ok, 2 failed" in proc.stdout
    for rec in records(tmp_path / "r" / "nodata" / "runs").values():
        assert rec["status"] == "failed" and rec["attempts"] == 2 and str(empty) in rec["error"]
    assert not list((tmp_path / "r" / "nodata" / "locks").iterdir())


def test_bad_options_and_unwritable_results_exit_2_before_running(tmp_path, capsys):
    path = write_study(tmp_path, "opts", {"seed": [0]})
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_cli("run", str(path), "--results", str(blocker))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: cannot write to {blocker}/opts/runs (Not a directory); "
                                                f"free space, fix permissions, or pass --results DIR"]
    for args, message in [(["--backend", "dask"], "--backend dask needs --address"),
                          (["--devices", "0,x"], "--devices '0,x': expected distinct GPU indices"),
                          (["--devices", "0"], "--devices given, but the study fixes device to cpu"),
                          (["--jobs", "0"], "--jobs 0: expected an integer >= 1")]:
        assert main(["run", str(path), "--results", str(tmp_path / "r"), *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)
    assert not (tmp_path / "r" / "opts" / "runs").exists(), "nothing may run or be created after an option error"


def pool_whose_worker_dies(monkeypatch, dies) -> list[tuple[str, int]]:
    """Make loky's start give an in-process pool whose worker 'dies' (its future raises, as loky's does) for the
    tasks `dies(task)` picks; returns the (run_id, first_attempt) of every submission."""
    import concurrent.futures as cf

    from studies.backends import InProcessPool, LokyPool
    from studies.task import execute_run

    submitted: list[tuple[str, int]] = []

    class DyingPool(InProcessPool):
        def submit(self, task, slot):
            submitted.append((task.run_id, task.first_attempt))
            future = cf.Future()
            if dies(task):
                future.set_exception(RuntimeError("A process in the process pool was terminated abruptly"))
            else:
                future.set_result(execute_run(task))
            return future

    monkeypatch.setattr(LokyPool, "start", classmethod(lambda cls, study, options, slots: DyingPool(slots)))
    return submitted


def test_dead_worker_is_resubmitted_then_recorded(tmp_path, monkeypatch):
    """A worker dying under a run (segfault, OOM kill) counts as an attempt; when attempts are spent, the
    scheduler writes the failed record itself. Simulated with a pool whose worker 'dies' for one run."""
    path = write_study(tmp_path, "crashy", {"seed": [0, 1]}, policy={"retries": 1})
    doomed = load_study(path).runs()[1].run_id
    submitted = pool_whose_worker_dies(monkeypatch, lambda task: task.run_id == doomed)
    summary = run_study(load_study(path), RunOptions(results=str(tmp_path / "r"), progress=False))
    assert (summary.ok, summary.failed) == (1, 1)
    assert [a for rid, a in submitted if rid == doomed] == [1, 2], "resubmitted once, as attempt 2"
    rec = records(tmp_path / "r" / "crashy" / "runs")[doomed]
    assert rec["status"] == "failed" and rec["attempts"] == 2 and rec["error"].startswith("worker died: RuntimeError")
    assert not list((tmp_path / "r" / "crashy" / "locks").iterdir())


def test_retry_after_a_dead_worker_goes_on_from_the_attempt_its_lock_names(tmp_path, monkeypatch):
    """The worker got to attempt 2 of 3 (retries happen inside it), wrote that into its lock, and died: the
    scheduler reads the lock, not the log, and resubmits as attempt 3."""
    path = write_study(tmp_path, "relay", {"seed": [0]}, policy={"retries": 2})
    (run,) = load_study(path).runs()
    paths = studies.StudyPaths.of(tmp_path / "r", "relay")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that is dead, like a crashed worker's

    def dies(task) -> bool:
        if task.first_attempt > 1:
            return False
        held = claim(paths.lock_path(run.run_id), run.run_id, submission=task.submission)
        held.update(attempt=2, pid=gone.pid)  # the worker reached attempt 2, then died with its lock left behind
        return True

    submitted = pool_whose_worker_dies(monkeypatch, dies)
    summary = run_study(load_study(path), RunOptions(results=str(tmp_path / "r"), progress=False))
    assert [first for _, first in submitted] == [1, 3] and summary.ok == 1
    assert records(paths.runs)[run.run_id]["attempts"] == 3
