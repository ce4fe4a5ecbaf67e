"""Where each run of a study stands, read from its results folder: done, failed, running (claimed by a live
lock), corrupt or pending. Used by `run` (what to do), `run --dry-run` and `status` (what to show).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from common.states import FINAL_STATES, RECORD_STATUSES, STATE_NAMES, TODO_STATES, is_final_status, state_of_status

from .spec import Run, Study
from .store import RecordState, StudyPaths

__all__ = ["Plan", "plan_study", "plan_runs", "STATES", "FINAL"]

# The states, what puts a run in each and which are final or to do: common.states.RUN_STATES, one table.
STATES = STATE_NAMES
FINAL = FINAL_STATES


@dataclass
class Plan:
    study: Study
    paths: StudyPaths
    runs: list[Run]
    state: dict[str, str] = field(default_factory=dict)  # run_id -> one of STATES
    holder: dict[str, str] = field(default_factory=dict)  # run_id -> "host:pid since ..." for running ones
    problems: list[str] = field(default_factory=list)  # why corrupt records were not accepted
    records: dict[str, dict] = field(default_factory=dict)  # run_id -> record, for done, diverged and failed
    foreign: list[str] = field(default_factory=list)  # record files of runs that are not in this grid

    def count(self, state: str) -> int:
        return sum(1 for s in self.state.values() if s == state)

    @property
    def todo(self) -> list[Run]:
        """Runs this scheduler should execute: everything not done and not running elsewhere."""
        return [r for r in self.runs if self.state[r.run_id] in TODO_STATES]

    @property
    def final(self) -> int:
        """How many runs are final (done or diverged): never run again."""
        return sum(self.count(s) for s in FINAL_STATES)


def plan_study(study: Study, paths: StudyPaths) -> Plan:
    return plan_runs(study, paths, study.runs())


def plan_runs(study: Study, paths: StudyPaths, runs: list[Run]) -> Plan:
    """Where each of `runs` stands (the grid's runs, or an adaptive study's chosen ones)."""
    plan = Plan(study, paths, runs)
    # One listing of each folder, then reads only where a file is: for 100,000 runs, two failed opens per run
    # cost more than the rest of the plan. A file that appears after the listing is seen by the claim, which
    # re-reads the record under the run's lock.
    records, locks = _names(paths.runs, ".json"), _names(paths.locks, ".lock")
    for run in plan.runs:
        rec = paths.read(run.run_id) if run.run_id in records else RecordState("missing")
        lock = paths.lock(run.run_id) if run.run_id in locks else None
        live = lock is not None and lock.stale_reason() is None
        if is_final_status(rec.state):  # an ok or diverged record: final, whoever holds a lock
            plan.state[run.run_id] = state_of_status(rec.state)
        elif live:
            plan.state[run.run_id] = "running"
            plan.holder[run.run_id] = lock.describe()
        elif rec.state in RECORD_STATUSES:
            plan.state[run.run_id] = state_of_status(rec.state)
        elif rec.state == "corrupt":
            plan.state[run.run_id] = "corrupt"
            plan.problems.append(f"{rec.problem}; treated as not done, it will be run again")
        else:
            plan.state[run.run_id] = "pending"
        if rec.record is not None:
            plan.records[run.run_id] = rec.record
    ours = set(plan.state)
    plan.foreign = sorted(rid for rid in records if rid not in ours)
    return plan


def _names(folder, suffix: str) -> set[str]:
    """Stems of the files in `folder` ending in `suffix` (temp files, which start with a dot, left out)."""
    try:
        return {n[:-len(suffix)] for n in os.listdir(folder) if n.endswith(suffix) and not n.startswith(".")}
    except FileNotFoundError:
        return set()
