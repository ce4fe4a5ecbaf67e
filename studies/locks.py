"""Run locks: which scheduler (host, pid) is executing a run right now, so that each run executes once.

A lock is `locks/<run_id>.lock`, a small JSON file created atomically (written to a temp file, then hard-linked
to its final name, which fails if the name exists; O_CREAT|O_EXCL where links are unsupported). Its mtime is
the heartbeat: the owner touches it every HEARTBEAT_S seconds while the run trains.

A lock is *stale* when its owner is on this host and its pid is dead, or when its heartbeat is older than
LOCK_TTL_S (the only test possible for a lock held on another host). Breaking a stale lock is race-safe: the
breaker renames it to a unique name first (only one breaker's rename can succeed), checks that what it took is
byte-for-byte the stale lock it judged, deletes it, and only then competes for the name with O_EXCL like
everyone else. If it took a fresh lock by mistake (someone broke and re-claimed in between), it puts it back.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .fsutil import fsync_dir, host, pid_alive, temp_path

__all__ = ["LockInfo", "Claim", "claim", "read_lock", "break_if_stale", "create_once", "LOCK_TTL_S", "HEARTBEAT_S"]

HEARTBEAT_S = 10.0  # the owner refreshes the lock's mtime this often
LOCK_TTL_S = 120.0  # a lock not refreshed for this long is stale, whoever holds it (allows for clock skew)


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says, read at one moment."""

    path: Path
    raw: bytes  # exact content, compared byte-for-byte before breaking
    host: str | None  # None when the content does not parse
    pid: int | None
    token: str | None
    started_at: str | None
    heartbeat_age_s: float  # seconds since the owner last touched it
    supervisor: int | None = None  # the scheduler pid a worker on the same host serves (it exits when that dies)
    submission: str | None = None  # the scheduler's token for the task that claimed it (one per submit)
    attempt: int | None = None  # the attempt under way, kept current by the holder (see Claim.update)
    killed: str | None = None  # why the holder ended its own process (watchdog, CUDA error), if it did

    def stale_reason(self, ttl_s: float = LOCK_TTL_S) -> str | None:
        """Why this lock may be broken, or None while its owner is presumed alive."""
        if self.host == host() and self.pid is not None and not pid_alive(self.pid):
            return f"owner pid {self.pid} on {self.host} is dead"
        if self.heartbeat_age_s > ttl_s:
            return f"no heartbeat for {self.heartbeat_age_s:.0f}s (limit {ttl_s:.0f}s)"
        return None

    def orphaned(self) -> bool:
        """Held by a live worker on this host whose scheduler died: the worker is about to exit (its watchdog
        polls every second), so wait for it rather than break a lock whose owner might still write."""
        return (self.host == host() and self.supervisor is not None and self.pid is not None
                and pid_alive(self.pid) and not pid_alive(self.supervisor))

    def describe(self) -> str:
        return f"{self.host or '?'}:{self.pid or '?'} since {self.started_at or '?'}"


def read_lock(path: Path) -> LockInfo | None:
    """The lock at `path`, or None when there is none."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
            mtime = os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
        owner_host, pid, token, started = str(data["host"]), int(data["pid"]), str(data["token"]), data.get("started_at")
        supervisor = int(data["supervisor"]) if data.get("supervisor") is not None else None
        extra = dict(submission=data.get("submission"), killed=data.get("killed"),
                     attempt=int(data["attempt"]) if data.get("attempt") is not None else None)
    except (ValueError, KeyError, TypeError, AttributeError):
        owner_host, pid, token, started, supervisor, extra = None, None, None, None, None, {}
    return LockInfo(path, raw, owner_host, pid, token, started, max(0.0, time.time() - mtime), supervisor, **extra)


@dataclass
class Claim:
    """A lock this process holds. Keep it fresh with `refresh()`; give it up with `release()`."""

    path: Path
    token: str

    def owned(self) -> bool:
        info = read_lock(self.path)
        return info is not None and info.token == self.token

    def refresh(self) -> bool:
        """Touch the heartbeat; False when the lock is no longer ours (broken by someone who judged it stale)."""
        if not self.owned():
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            return False
        return True

    def update(self, **fields) -> bool:
        """Rewrite the lock with `fields` added (the attempt under way, a kill reason), atomically and only while
        it is ours; False when it is not. A breaker that read the old bytes sees different ones and backs off."""
        info = read_lock(self.path)
        if info is None or info.token != self.token:
            return False
        content = json.dumps({**json.loads(info.raw), **fields}).encode()
        tmp = temp_path(self.path)
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)
        return True

    def release(self) -> None:
        if self.owned():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def claim(path: Path, run_id: str, *, supervisor: int | None = None, submission: str | None = None,
          ttl_s: float = LOCK_TTL_S) -> Claim | LockInfo:
    """Take the lock for `run_id`; breaks a stale one. Returns the Claim, or the live holder's LockInfo.
    `supervisor`: for a worker process, the pid of the scheduler it serves on this host. `submission`: the
    scheduler's token for this task, so that it can tell its own task's lock from anyone else's."""
    token = secrets.token_hex(8)
    content = json.dumps({
        "run_id": run_id, "host": host(), "pid": os.getpid(), "token": token,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "heartbeat_s": HEARTBEAT_S, "ttl_s": ttl_s, "supervisor": supervisor, "submission": submission,
        "attempt": None, "killed": None,
    }).encode()
    holder: LockInfo | None = None
    for _ in range(5):
        if _create_exclusive(path, content):
            return Claim(path, token)
        holder = read_lock(path)
        if holder is None:
            continue  # released between our attempt and our look: try again
        if holder.stale_reason(ttl_s) is None:
            return holder
        break_if_stale(holder, ttl_s)
    if holder is None:
        raise RuntimeError(f"could not claim {path}: it kept appearing and vanishing; another scheduler is churning")
    return holder


def break_if_stale(info: LockInfo, ttl_s: float = LOCK_TTL_S) -> bool:
    """Remove the lock `info` describes if it is (still) stale; True when we removed it."""
    if info.stale_reason(ttl_s) is None:
        return False
    aside = temp_path(info.path, "broken")
    try:
        os.rename(info.path, aside)  # only one breaker wins this
    except FileNotFoundError:
        return False
    try:
        with open(aside, "rb") as f:
            taken = f.read()
        if taken == info.raw:
            return True
        try:  # we took a fresh lock someone claimed after our look: put it back unless the name is taken again
            os.link(aside, info.path)
        except FileExistsError:
            pass  # its owner will see on its next heartbeat that the lock is no longer its own, and stop
        return False
    finally:
        try:
            os.unlink(aside)
        except FileNotFoundError:
            pass


def create_once(path: Path, content: bytes) -> bool:
    """Create `path` with `content` unless it exists, atomically: of several processes (on any host sharing the
    folder) racing to create it, exactly one gets True."""
    return _create_exclusive(path, content)


def _create_exclusive(path: Path, content: bytes) -> bool:
    """Create `path` holding `content` atomically, or return False if it exists."""
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # atomic, fails if path exists, and readers never see a half-written lock
        return True
    except FileExistsError:
        return False
    except OSError:  # filesystems without hard links: O_EXCL, with a tiny window where the file is empty
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        return True
    finally:
        os.unlink(tmp)
        fsync_dir(path.parent)
