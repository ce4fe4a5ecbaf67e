"""Filesystem and process helpers shared by the store and the locks: atomic writes, owner-tagged temp names,
and "is this process still alive" checks.

Every temporary file this package writes carries its owner in its name (`.<name>~<host>~<pid>~<nonce>`), so a
later scheduler can tell a leftover of a dead process (safe to delete) from a write in progress (leave it).
"""
from __future__ import annotations

import errno
import os
import secrets
import socket
from pathlib import Path

from common.jsonfile import atomic_write, fsync_dir

__all__ = ["host", "pid_alive", "temp_path", "temp_owner", "is_temp", "atomic_write_text", "fsync_dir",
           "is_disk_full", "DISK_FULL_ERRNOS"]

_SEP = "~"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # no space left on device; disk quota exceeded


def host() -> str:
    """This machine's host name, as written into locks, temp names and records."""
    return socket.gethostname() or "unknown-host"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` on this host is alive. Zombies (exited, not yet reaped) count as dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # Linux: a zombie answers kill(0) but will never refresh a heartbeat again
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def temp_path(final: Path, kind: str = "tmp") -> Path:
    """A unique hidden sibling of `final` naming this host and pid: `.<name>.<kind>~<host>~<pid>~<nonce>`."""
    safe_host = host().replace(_SEP, "-")
    return final.with_name(f".{final.name}.{kind}{_SEP}{safe_host}{_SEP}{os.getpid()}{_SEP}{secrets.token_hex(4)}")


def is_temp(path: Path) -> bool:
    """Whether `path` is one of our owner-tagged temp names (readers must ignore these)."""
    return path.name.startswith(".") and path.name.count(_SEP) == 3


def temp_owner(path: Path) -> tuple[str, int] | None:
    """(host, pid) encoded in a temp name, or None when the name is not one of ours."""
    if not is_temp(path):
        return None
    _, owner_host, pid, _ = path.name.split(_SEP)
    return (owner_host, int(pid)) if pid.isdigit() else None


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, says the disk (or the user's quota) is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def atomic_write_text(final: Path, text: str) -> None:
    """Write `text` to `final` so that readers see either the old file or the whole new one, never a part:
    the project's one atomic writer (common.jsonfile: temp file, fsync, os.replace, fsync of the folder), with a
    temp name that carries this process as its owner."""
    atomic_write(final, text, temp=temp_path(final))
