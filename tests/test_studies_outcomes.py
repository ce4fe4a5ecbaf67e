"""Diverged runs (final, reported as failed, never retried or rerun) and a full results disk (stop starting runs,
exit 2 with one line naming the folder, lose nothing)."""
from __future__ import annotations

import errno
import json
from collections import namedtuple

import speedrun
import studies
from studies import load_study, run_study, RunOptions, study_status
from studies.cli import main
from studies.logfile import RunLog
from studies.store import MIN_FREE_BYTES, StudyPaths
from test_studies_run import records, write_study

REASON = "training loss is nan at epoch 1 (lr too high?); stopped"


def counting_train(monkeypatch, diverge: set[int] = frozenset()):
    """Patch speedrun.train: count calls per seed; seeds in `diverge` return a diverged record as speedrun does."""
    calls: dict[int, int] = {}
    real = speedrun.train

    def train(config, *, progress=None):
        calls[config.seed] = calls.get(config.seed, 0) + 1
        record = real(config, progress=progress)
        if config.seed in diverge:
            record.update(status="diverged", error=REASON)
        return record

    monkeypatch.setattr(speedrun, "train", train)
    return calls


def test_a_diverged_run_is_final_reported_as_failed_and_never_retried(tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path, "blowup", {"seed": [0, 1]}, policy={"retries": 2})
    ids = [r.run_id for r in load_study(path).runs()]
    calls = counting_train(monkeypatch, diverge={1})
    results = tmp_path / "r"
    assert main(["run", str(path), "--results", str(results), "--no-progress"]) == 1, "reported as a failure"
    out = capsys.readouterr()
    assert calls == {0: 1, 1: 1}, "deterministic: a diverged run is not retried despite retries = 2"
    assert "1 ok, 0 failed, 1 diverged, 0 skipped" in out.out
    assert f"  diverged {ids[1]}: {REASON} (final, not retried" in out.out and "DIVERGED" in out.err
    rec = records(results / "blowup" / "runs")[ids[1]]
    assert (rec["status"], rec["error"], rec["attempts"], rec["study"]) == ("diverged", REASON, 1, "blowup")
    log = (results / "blowup" / "logs" / f"{ids[1]}.log").read_text()
    assert "# ok" not in log and "# diverged: " in log

    assert main(["run", str(path), "--results", str(results), "--no-progress"]) == 0
    assert calls == {0: 1, 1: 1}, "a rerun must not run a diverged run again"
    assert "0 ok, 0 failed, 2 skipped" in capsys.readouterr().out
    assert main(["run", str(path), "--results", str(results), "--dry-run", "--no-bench"]) == 0
    assert f"diverged (final)           {ids[1]}" in capsys.readouterr().out


def test_a_fabricated_diverged_record_counts_in_status_and_is_skipped(tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path, "fab", {"width": [2, 4], "seed": [0, 1]})
    study = load_study(path)
    paths = StudyPaths.of(tmp_path / "r", "fab")
    bad = study.runs()[0]
    record = speedrun.failed_record(bad.config, "placeholder", study="fab")
    record.update(status="diverged", error=REASON)  # the layout speedrun writes for a diverged run
    paths.runs.mkdir(parents=True)
    paths.write_record(record)
    status = study_status(study, str(tmp_path / "r"))
    cells = {c.cell["width"]: c for c in status.cells}
    assert (cells[2].done, cells[2].diverged, cells[2].failed, cells[2].pending) == (0, 1, 0, 1)
    assert main(["status", str(path), "--results", str(tmp_path / "r")]) == 0
    table = capsys.readouterr().out
    totals = next(line for line in table.splitlines() if line.startswith("total"))
    assert "done  diverged  failed" in table and totals.split()[:3] == ["total", "0", "1"]
    calls = counting_train(monkeypatch)
    summary = run_study(study, RunOptions(results=str(tmp_path / "r"), progress=False))
    assert (summary.ok, summary.skipped, summary.exit_code) == (3, 1, 0)
    assert sum(calls.values()) == 3 and json.loads(paths.record_path(bad.run_id).read_text()) == record


def enospc(path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_disk_full_writing_a_record_stops_new_runs_and_loses_nothing(tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path, "full", {"seed": [0, 1, 2, 3]})
    ids = [r.run_id for r in load_study(path).runs()]
    results = tmp_path / "r"
    calls = counting_train(monkeypatch)
    real_write = StudyPaths.write_record

    def write_record(self, record):
        if record["config"]["seed"] >= 1:  # the disk fills up after the first record
            raise enospc(self.runs / f".{record['run_id']}.json.tmp~h~1~x")
        return real_write(self, record)

    monkeypatch.setattr(StudyPaths, "write_record", write_record)
    code = main(["run", str(path), "--results", str(results), "--no-progress"])
    out = capsys.readouterr()
    assert code == 2
    assert calls == {0: 1, 1: 1}, "after the full disk no new run may start (and the failed write is not retried)"
    errors = [line for line in out.err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: no space left on the device holding {results / 'full' / 'runs'}: free space there and "
                      f"run the same command again; finished records are kept"]
    first = records(results / "full" / "runs")
    assert list(first) == [ids[0]] and first[ids[0]]["status"] == "ok"
    assert not list((results / "full" / "locks").iterdir()), "no lock may be left behind"

    monkeypatch.setattr(StudyPaths, "write_record", real_write)  # space freed: the same command finishes the rest
    assert main(["run", str(path), "--results", str(results), "--no-progress"]) == 0
    assert "3 ok, 0 failed, 1 skipped" in capsys.readouterr().out
    assert records(results / "full" / "runs")[ids[0]] == first[ids[0]], "the finished record is untouched"


def test_disk_full_writing_the_log_stops_the_run_at_once(tmp_path, monkeypatch, capsys):
    """The log fills the disk during the first epoch: the run stops there (it does not train to the end only to
    fail writing its record), is not retried, and no record is written."""
    path = write_study(tmp_path, "logfull", {"seed": [0, 1]}, {"epochs": 3}, policy={"retries": 2})
    epochs_seen: list[int] = []
    real_epoch = RunLog.epoch

    def epoch(self, row):
        epochs_seen.append(row["epoch"])
        raise enospc(self.path)

    monkeypatch.setattr(RunLog, "epoch", epoch)
    summary = run_study(load_study(path), RunOptions(results=str(tmp_path / "r"), progress=False))
    assert summary.exit_code == 2 and (summary.ok, summary.failed) == (0, 0)
    assert epochs_seen == [1], "one epoch, one run: then stop"
    assert summary.no_space.startswith(f"no space left on the device holding {tmp_path / 'r' / 'logfull' / 'logs'}")
    assert not records(tmp_path / "r" / "logfull" / "runs")
    monkeypatch.setattr(RunLog, "epoch", real_epoch)


def test_too_little_free_space_starts_nothing(tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path, "tight", {"seed": [0, 1]})
    calls = counting_train(monkeypatch)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(studies.store.shutil, "disk_usage", lambda p: usage(1 << 30, (1 << 30) - 4096, 4096))
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert not calls
    assert f"error: only 0.00 MiB free on the disk holding {tmp_path / 'r' / 'tight'} (no run starts below " \
           f"{MIN_FREE_BYTES // 2**20} MiB): free space there and run the same command again" in err
    assert "not starting 2 more run(s)" in err


def test_a_failed_record_returned_by_train_is_a_failed_attempt(tmp_path, monkeypatch):
    """Should train() ever report a failure in its record instead of raising, it is not taken for a result."""
    path = write_study(tmp_path, "quiet", {"seed": [0]}, policy={"retries": 1})
    calls = []

    def train(config, *, progress=None):
        calls.append(config.seed)
        return speedrun.failed_record(config, "ValueError: reported, not raised")

    monkeypatch.setattr(speedrun, "train", train)
    summary = run_study(load_study(path), RunOptions(results=str(tmp_path / "r"), progress=False))
    assert (summary.ok, summary.failed, calls) == (0, 1, [0, 0])
    (rec,) = records(tmp_path / "r" / "quiet" / "runs").values()
    assert rec["status"] == "failed" and rec["error"] == "RuntimeError: ValueError: reported, not raised"
