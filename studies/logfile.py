"""The per-run log, `logs/<run_id>.log`: one block per attempt — a header line, the per-epoch table as
`python -m speedrun train` prints it, and the outcome (or the error with its traceback).

Attempts append, so the log of a run that was retried, or restarted after its scheduler was killed, tells the
whole story. Every attempt starts with a line beginning `# attempt `, which makes executions countable. The
scheduler reads nothing back from here: the attempt under way is in the run's lock file (see locks.py).
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from speedrun import epoch_header, epoch_line

from .fsutil import host

__all__ = ["RunLog", "ATTEMPT_PREFIX", "KILLED_PREFIX"]

ATTEMPT_PREFIX = "# attempt "
KILLED_PREFIX = "killed: "  # a note written just before a worker ends itself (watchdog, CUDA error), for the reader


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
