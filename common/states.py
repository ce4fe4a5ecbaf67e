"""The run-state table: every state a run of a study can be in, the record `status` behind it (results/README.md),
and what the scheduler does with it. One table, so the words a record holds ("ok") and the words `studies
status` shows ("done") are two columns of one row, never two lists that can drift apart.

A record's `status` is one of RECORD_STATUSES; a run's state also covers what has no record yet (a lock held by a
live process, a file that does not parse, nothing at all). A final state is never run again: an ok record, or a
diverged one (training is deterministic, so the same config and seed would diverge again).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunState", "RUN_STATES", "RECORD_STATUSES", "STATE_NAMES", "FINAL_STATES", "FINAL_STATUSES",
           "TODO_STATES", "DRY_RUN_WORDS", "state_of_status", "is_final_status"]


@dataclass(frozen=True)
class RunState:
    name: str  # the scheduler's word for it (`studies status`, `run --dry-run`)
    status: str | None  # the record `status` that puts a run here; None: no readable record says so
    final: bool  # never run again
    todo: bool  # this scheduler should run it (False for final runs and for runs another process holds)
    dry_run: str  # what `studies run --dry-run` says of a run in this state
    meaning: str


RUN_STATES = (
    RunState("done", "ok", final=True, todo=False, dry_run="done",
             meaning="trained to the end; the record holds its results"),
    RunState("diverged", "diverged", final=True, todo=False, dry_run="diverged (final)",
             meaning="stopped at the end of the first epoch whose loss was not finite; no accuracy"),
    RunState("failed", "failed", final=False, todo=True, dry_run="to run (failed before)",
             meaning="did not finish; run again"),
    RunState("running", None, final=False, todo=False, dry_run="running elsewhere",
             meaning="a live lock: another scheduler executes it"),
    RunState("corrupt", None, final=False, todo=True, dry_run="to run (unreadable record)",
             meaning="a record file that does not parse; run again"),
    RunState("pending", None, final=False, todo=True, dry_run="to run", meaning="nothing yet"),
)

# The record's `status` field, in results/README.md's order.
RECORD_STATUSES = tuple(s.status for s in RUN_STATES if s.status is not None)
STATE_NAMES = tuple(s.name for s in RUN_STATES)
FINAL_STATES = tuple(s.name for s in RUN_STATES if s.final)
FINAL_STATUSES = tuple(s.status for s in RUN_STATES if s.final)
TODO_STATES = tuple(s.name for s in RUN_STATES if s.todo)
DRY_RUN_WORDS = {s.name: s.dry_run for s in RUN_STATES}
_BY_STATUS = {s.status: s.name for s in RUN_STATES if s.status is not None}


def state_of_status(status: str) -> str:
    """The run state a record with this `status` puts its run in ("ok" -> "done")."""
    try:
        return _BY_STATUS[status]
    except KeyError:
        raise ValueError(f"record status {status!r} is not one of {', '.join(map(repr, RECORD_STATUSES))}") from None


def is_final_status(status) -> bool:
    """Whether a record with this `status` is final (never rerun): ok or diverged."""
    return status in FINAL_STATUSES
