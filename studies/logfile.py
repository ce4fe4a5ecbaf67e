"""The per-run log, `logs/<run_id>.log`: one block per attempt — a header line, the per-epoch table as
`python -m speedrun train` prints it, and the outcome (or the error with its traceback).

Attempts append, so the log of a run that was retried, or restarted after its scheduler was killed, tells the
whole story. Every attempt starts with a line beginning `# attempt `, which makes executions countable.
"""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from speedrun import epoch_header, epoch_line

from .fsutil import host

__all__ = ["RunLog", "ATTEMPT_PREFIX", "KILLED_PREFIX", "attempt_trail"]

ATTEMPT_PREFIX = "# attempt "
KILLED_PREFIX = "killed: "  # a note the task watchdog writes just before it ends its worker
_HEADER = re.compile(r"^# attempt (\d+)/\d+ on .* at (\S+)$")


class RunLog:
    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def __enter__(self) -> "RunLog":
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # line-buffered: readable while running
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _line(self, text: str) -> None:
        self._file.write(text + "\n")

    def attempt(self, attempt: int, of: int, config) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._line(f"{ATTEMPT_PREFIX}{attempt}/{of} on {host()} pid {os.getpid()} device {config.device} at {now}")
        self._line(epoch_header())

    def epoch(self, row: dict) -> None:
        self._line(epoch_line(row))

    def success(self, record: dict) -> None:
        self._line(f"# ok ema_val_acc={_fmt(record.get('ema_val_acc'))} train_time_s={_fmt(record.get('train_time_s'))}"
                   f" wall_time_s={_fmt(record.get('wall_time_s'))} device={record.get('device')}")

    def failure(self, error: str, trace: str) -> None:
        self._line(f"# failed: {error}")
        for line in trace.rstrip().splitlines():
            self._line(f"#   {line}")

    def note(self, text: str) -> None:
        self._line(f"# {text}")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def attempt_trail(path: Path, since: datetime) -> tuple[int | None, str | None]:
    """What the log says about the attempt a dead worker was in: the number of the last attempt that started
    at or after `since` (None when none did, e.g. the worker died before it began), and the reason the
    watchdog gave if it ended that attempt's worker (None otherwise)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None, None
    attempt, killed = None, None
    cutoff = since.replace(microsecond=0)
    for line in lines:
        match = _HEADER.match(line)
        if match:
            try:
                started = datetime.fromisoformat(match.group(2))
            except ValueError:
                continue
            if started >= cutoff:
                attempt, killed = int(match.group(1)), None
        elif attempt is not None and line.startswith(f"# {KILLED_PREFIX}"):
            killed = line[len(f"# {KILLED_PREFIX}"):]
    return attempt, killed
