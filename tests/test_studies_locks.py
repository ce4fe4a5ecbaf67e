"""Locks and the results folder: exclusive claims, stale locks broken safely, atomic records, leftovers cleaned."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studies.fsutil import atomic_write_text, host, is_temp, temp_path
from studies.locks import LOCK_TTL_S, Claim, LockInfo, break_if_stale, claim, read_lock
from studies.store import StoreError, StudyPaths


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fake_lock(path: Path, pid: int, *, lock_host: str | None = None, age_s: float = 0.0) -> None:
    path.write_text(json.dumps({"run_id": path.stem, "host": lock_host or host(), "pid": pid, "token": "t" + str(pid),
                                "started_at": "2026-01-01T00:00:00+00:00"}))
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))


def test_claim_is_exclusive_and_released(tmp_path):
    lock = tmp_path / "abc.lock"
    first = claim(lock, "abc")
    assert isinstance(first, Claim) and first.owned()
    second = claim(lock, "abc")
    assert isinstance(second, LockInfo), "a live lock must not be claimed twice"
    assert second.pid == os.getpid() and second.stale_reason() is None
    assert first.refresh()
    first.release()
    assert not lock.exists()
    assert isinstance(claim(lock, "abc"), Claim)
    assert not [p for p in tmp_path.iterdir() if is_temp(p)], "claiming must leave no temp files"


def test_lock_of_dead_pid_on_this_host_is_broken(tmp_path):
    lock = tmp_path / "abc.lock"
    fake_lock(lock, dead_pid())
    assert "dead" in read_lock(lock).stale_reason()
    mine = claim(lock, "abc")
    assert isinstance(mine, Claim) and json.loads(lock.read_text())["pid"] == os.getpid()


def test_other_host_lock_breaks_only_after_ttl(tmp_path):
    lock = tmp_path / "abc.lock"
    fake_lock(lock, 1, lock_host="elsewhere.example")
    assert isinstance(claim(lock, "abc"), LockInfo), "a fresh lock from another host is live"
    fake_lock(lock, 1, lock_host="elsewhere.example", age_s=LOCK_TTL_S + 5)
    assert "no heartbeat" in read_lock(lock).stale_reason()
    assert isinstance(claim(lock, "abc"), Claim)


def test_breaking_a_lock_that_was_replaced_meanwhile_puts_it_back(tmp_path):
    """B judges a lock stale; before B acts, C breaks it and claims it fresh. B must not destroy C's lock."""
    lock = tmp_path / "abc.lock"
    fake_lock(lock, dead_pid())
    judged = read_lock(lock)  # B's look: stale
    c = claim(lock, "abc")  # C breaks and re-claims
    assert isinstance(c, Claim)
    assert not break_if_stale(judged), "B took a fresh lock for the stale one it saw"
    assert c.owned(), "C's fresh lock must be restored"
    assert not [p for p in tmp_path.iterdir() if p.name != "abc.lock"], "no leftovers from the aborted break"


def test_heartbeat_notices_takeover(tmp_path):
    lock = tmp_path / "abc.lock"
    mine = claim(lock, "abc")
    lock.unlink()
    fake_lock(lock, os.getpid())  # someone else's token
    assert not mine.refresh()
    mine.release()
    assert lock.exists(), "release must not delete a lock that is no longer ours"


def test_atomic_write_leaves_only_the_final_file(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_text(target, '{"a": 1}')
    atomic_write_text(target, '{"a": 2}')
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_readers_ignore_temp_files_and_report_corrupt_records(tmp_path):
    paths = StudyPaths.of(tmp_path, "s")
    paths.prepare()
    half = temp_path(paths.record_path("aaaaaaaaaaaa"))
    half.write_text('{"run_id": "aaaa')  # a write cut short
    paths.record_path("bbbbbbbbbbbb").write_text('{"run_id": "bbbb')  # truncated by a disk error
    assert paths.record_ids() == ["bbbbbbbbbbbb"]
    assert paths.read("aaaaaaaaaaaa").state == "missing"
    corrupt = paths.read("bbbbbbbbbbbb")
    assert corrupt.state == "corrupt" and "not valid JSON" in corrupt.problem


def test_clean_leftovers_removes_dead_writers_files_and_stale_locks(tmp_path):
    paths = StudyPaths.of(tmp_path, "s")
    paths.prepare()
    pid = dead_pid()
    name = temp_path(paths.record_path("aaaaaaaaaaaa")).name.rsplit("~", 2)[0]
    orphan = paths.runs / f"{name}~{pid}~beef"
    orphan.write_text("partial")
    live = temp_path(paths.record_path("cccccccccccc"))  # ours: a write in progress
    live.write_text("partial")
    fake_lock(paths.lock_path("aaaaaaaaaaaa"), pid)
    fake_lock(paths.lock_path("cccccccccccc"), os.getpid())
    removed = paths.clean_leftovers()
    assert not orphan.exists() and live.exists()
    assert not paths.lock_path("aaaaaaaaaaaa").exists() and paths.lock_path("cccccccccccc").exists()
    assert len(removed) == 2, removed


def test_unwritable_results_folder_is_one_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=r"cannot write to .*file/s/runs .*--results DIR"):
        StudyPaths.of(blocker, "s").prepare()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError, match=r"disk full.*free space"):
        StudyPaths.of(tmp_path / "ok", "s").prepare()
    monkeypatch.undo()
    assert not [p for p in (tmp_path / "ok" / "s" / "runs").iterdir()], "the probe must not stay behind"
