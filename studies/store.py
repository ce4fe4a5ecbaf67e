"""The results folder of one study: the one object that owns every path of it, and reads and writes records.

    <results>/<study>/runs/<run_id>.json    one record per run, written atomically (temp file, fsync, rename)
    <results>/<study>/logs/<run_id>.log     the per-epoch table and errors of every attempt
    <results>/<study>/locks/<run_id>.lock   present while some scheduler executes the run (see locks.py)

Readers look only at `<run_id>.json`; hidden temp files are ignored, and a record that does not parse is
reported and treated as not done, so it is run again and replaced.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from common.jsonfile import json_text, strict_json
from common.states import RECORD_STATUSES

from .fsutil import DISK_FULL_ERRNOS, atomic_write_text, host, is_temp, pid_alive, temp_owner, temp_path
from .locks import LOCK_TTL_S, LockInfo, break_if_stale, read_lock

__all__ = ["StudyPaths", "RecordState", "StoreError", "RECORD_STATUSES", "MIN_FREE_BYTES"]

_FOREIGN_TEMP_AGE_S = 600.0  # a temp file of another host older than this is a leftover (writes take ms)
_PROBE_BYTES = 64 * 1024  # about the size of a large record: enough to notice a full disk
# Below this much free space no new run starts: a record is ~10-100 kB and a log a few kB per epoch, so 16 MiB is
# hundreds of runs' worth; less means the disk is as good as full, and a run started now would train to the end
# only to fail writing its record (hours of GPU time lost).
MIN_FREE_BYTES = 16 * 1024 * 1024


class StoreError(OSError):
    """The results folder cannot be used (unwritable, disk full); the message says which folder and what to do."""


@dataclass(frozen=True)
class RecordState:
    """What the runs folder says about one run: state is a RECORD_STATUSES value, "missing" or "corrupt"."""

    state: str
    record: dict | None = None
    problem: str | None = None  # for "corrupt": why the file was not accepted


@dataclass(frozen=True)
class StudyPaths:
    root: Path  # <results>/<study>

    @classmethod
    def of(cls, results_dir: str | Path, study: str) -> "StudyPaths":
        return cls(Path(results_dir) / study)

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def adaptive(self) -> Path:
        """Cached answers of the adaptive policy's law predictor (a cache: safe to delete)."""
        return self.root / "adaptive"

    def record_path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def log_path(self, run_id: str) -> Path:
        return self.logs / f"{run_id}.log"

    def lock_path(self, run_id: str) -> Path:
        return self.locks / f"{run_id}.lock"

    # --- setup
    def prepare(self) -> None:
        """Create the folders and prove they are writable, before any run starts; StoreError says what failed."""
        for folder in (self.runs, self.logs, self.locks):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = temp_path(folder / "write-probe")
                with open(probe, "wb") as f:
                    f.write(b"\0" * _PROBE_BYTES)
                    f.flush()
                    os.fsync(f.fileno())
                os.unlink(probe)
            except OSError as e:
                try:
                    os.unlink(probe)  # type: ignore[possibly-undefined]
                except (OSError, UnboundLocalError):
                    pass
                reason = "disk full" if e.errno in DISK_FULL_ERRNOS else (e.strerror or str(e))
                raise StoreError(
                    f"cannot write to {folder} ({reason}); free space, fix permissions, or pass --results DIR"
                ) from None

    def space_problem(self) -> str | None:
        """A one-line reason not to start another run (the disk holding the study is full), else None."""
        try:
            free = shutil.disk_usage(self.runs).free
        except OSError:
            return None  # cannot tell; writes will say
        if free >= MIN_FREE_BYTES:
            return None
        return (f"only {free / 2**20:.2f} MiB free on the disk holding {self.root} (no run starts below "
                f"{MIN_FREE_BYTES / 2**20:g} MiB): free space there and run the same command again; finished "
                f"records are kept")

    def no_space_message(self, exc: OSError) -> str:
        """One line for a write that failed because the disk is full: which folder, and what to do."""
        folder = Path(exc.filename).parent if getattr(exc, "filename", None) else self.root
        return (f"no space left on the device holding {folder}: free space there and run the same command again; "
                f"finished records are kept")

    def clean_leftovers(self) -> list[str]:
        """Delete temp files of dead writers and break stale locks (left by a killed scheduler).
        Returns one line per thing removed."""
        removed = []
        for folder in (self.runs, self.locks, self.logs, self.adaptive):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                owner = temp_owner(path)
                if owner is None or not _temp_is_orphan(path, owner):
                    continue
                try:
                    path.unlink()
                    removed.append(f"removed leftover temp file {path}")
                except FileNotFoundError:
                    pass
        for info in self.all_locks():
            info = _wait_for_orphan(info)
            reason = info.stale_reason()
            if reason and break_if_stale(info):
                removed.append(f"broke stale lock {info.path.name} ({reason})")
        return removed

    # --- reading
    def read(self, run_id: str) -> RecordState:
        path = self.record_path(run_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return RecordState("missing")
        except OSError as e:
            return RecordState("corrupt", problem=f"{path}: unreadable ({e.strerror or e})")
        try:
            record = json.loads(text)
        except ValueError as e:
            return RecordState("corrupt", problem=f"{path}: not valid JSON ({e})")
        if not isinstance(record, dict) or record.get("run_id") != run_id:
            found = record.get("run_id") if isinstance(record, dict) else type(record).__name__
            return RecordState("corrupt", problem=f"{path}: holds run_id {found!r}, expected {run_id!r}")
        status = record.get("status")
        if status not in RECORD_STATUSES:
            return RecordState("corrupt", problem=f"{path}: status {status!r}, expected one of "
                                                  f"{', '.join(map(repr, RECORD_STATUSES))}")
        return RecordState(status, record)

    def record_ids(self) -> list[str]:
        """run_ids of every record file present (temp files excluded)."""
        if not self.runs.is_dir():
            return []
        return sorted(p.stem for p in self.runs.glob("*.json") if not is_temp(p) and not p.name.startswith("."))

    def lock(self, run_id: str) -> LockInfo | None:
        return read_lock(self.lock_path(run_id))

    def all_locks(self) -> list[LockInfo]:
        if not self.locks.is_dir():
            return []
        infos = (read_lock(p) for p in sorted(self.locks.glob("*.lock")) if not is_temp(p))
        return [i for i in infos if i is not None]

    # --- writing
    def write_record(self, record: dict) -> Path:
        path = self.record_path(record["run_id"])
        atomic_write_text(path, json_text(strict_json(record)))  # strict JSON: null, never NaN
        return path


def _wait_for_orphan(info: LockInfo, limit_s: float = 15.0) -> LockInfo:
    """A worker of a killed scheduler exits within about a second; wait for it, then look at its lock again."""
    deadline = time.monotonic() + limit_s
    while info.orphaned() and time.monotonic() < deadline:
        time.sleep(0.2)
    return read_lock(info.path) or info


def _temp_is_orphan(path: Path, owner: tuple[str, int]) -> bool:
    owner_host, pid = owner
    if owner_host == host().replace("~", "-"):
        return not pid_alive(pid)
    try:
        return time.time() - path.stat().st_mtime > max(_FOREIGN_TEMP_AGE_S, LOCK_TTL_S)
    except FileNotFoundError:
        return False
