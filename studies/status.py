"""`study_status`: per grid cell (seeds collapsed), how many runs are done / failed / running / pending, and the
training compute done and remaining (estimated with speedrun.train_flops; actual train_flops for
finished runs)."""
from __future__ import annotations

from dataclasses import dataclass, field

import speedrun
from tqdm import tqdm

from common.states import FINAL_STATES

from .devices import Slot, plan_slots
from .estimate import Cost, plan_cost
from .adaptive import replay
from .plan import Plan, plan_runs, plan_study
from .rounds import describe_replay, predictor_for
from .spec import Study
from .store import StudyPaths

__all__ = ["CellStatus", "StudyStatus", "study_status", "format_status"]


@dataclass
class CellStatus:
    cell: dict  # grid values without the seed, e.g. {"width": 64, "epochs": 10}
    done: int = 0
    diverged: int = 0  # final records whose training went non-finite (no accuracy; never rerun)
    failed: int = 0
    running: int = 0
    pending: int = 0  # nothing yet, or an unreadable record
    flops_done: int = 0
    flops_remaining: int = 0

    @property
    def total(self) -> int:
        return self.done + self.diverged + self.failed + self.running + self.pending


@dataclass
class StudyStatus:
    study: str
    root: str
    cells: list[CellStatus] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    foreign: int = 0  # records in the folder that belong to no run of the current grid
    cost: Cost | None = None  # FLOPs done and left, and the time left on the devices a run would use
    adaptive: str | None = None  # for a study with an [adaptive] policy: where it stands, or how to see that

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.cells)


def study_status(study: Study, results: str = "results", *, slots: list[Slot] | None = None,
                 bench: bool = False, adaptive: bool = False) -> StudyStatus:
    """Where `study` stands, per cell, and what is left would cost on `slots` (default: where `studies run`
    with default options would place runs on this machine); `bench`: time a few steps where no record says;
    `adaptive`: as `run --adaptive` sees it (the runs its rounds have chosen so far), not the grid's seeds."""
    paths = StudyPaths.of(results, study.name)
    if adaptive and study.adaptive is None:
        raise ValueError(f"--adaptive: study {study.name!r} has no [adaptive] table (see studies/README.md)")
    note = None
    if adaptive:
        state = replay(study, paths, predictor_for(study, paths, write_cache=False))
        plan: Plan = plan_runs(study, paths, state.chosen)
        note = describe_replay(state)
    else:
        plan = plan_study(study, paths)
        if study.adaptive is not None:
            note = "this study has an [adaptive] policy; `status --adaptive` shows its rounds (this: the grid's seeds)"
    status = StudyStatus(study.name, str(plan.paths.root), problems=list(plan.problems), foreign=len(plan.foreign),
                         adaptive=note)
    cells: dict[tuple, CellStatus] = {}
    for run in plan.runs:
        key = run.cell(study.cell_fields)
        cell = cells.setdefault(key, CellStatus(dict(zip(study.cell_fields, key))))
        state = plan.state[run.run_id]
        # Counted only where no record says: the network's own FLOP count takes a meta-device forward per width.
        if state in FINAL_STATES:  # a diverged run spent compute up to the epoch it stopped at
            setattr(cell, state, getattr(cell, state) + 1)
            cell.flops_done += int(plan.records[run.run_id].get("train_flops") or speedrun.train_flops(run.config))
            continue
        cell.flops_remaining += speedrun.train_flops(run.config)
        if state == "failed":
            cell.failed += 1
        elif state == "running":
            cell.running += 1
        else:
            cell.pending += 1
    status.cells = list(cells.values())
    if slots is None:
        slots = plan_slots({r.config.device for r in plan.runs}, None, None)
    status.cost = plan_cost(plan, slots, results, bench=bench)
    return status


def format_status(status: StudyStatus, study: Study) -> str:
    """A plain-text table, one line per cell, then the totals."""
    keys = list(study.cell_fields)
    counts = ("done", "diverged", "failed", "running", "pending") if status.total("diverged") else (
        "done", "failed", "running", "pending")  # the diverged column only where there is one
    headers = keys + list(counts) + ["FLOPs done", "FLOPs left"]
    rows = [[*(str(c.cell[k]) for k in keys), *(str(getattr(c, n)) for n in counts),
             _si(c.flops_done), _si(c.flops_remaining)] for c in status.cells]
    totals = ["total", *[""] * (len(keys) - 1)] if keys else []
    rows.append(totals + [str(status.total(n)) for n in counts]
                + [_si(status.total("flops_done")), _si(status.total("flops_remaining"))])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    n = sum(c.total for c in status.cells)
    lines = [f"{status.study}: {n} runs in {len(status.cells)} cells ({status.root})"]
    lines += [f"adaptive: {status.adaptive}"] if status.adaptive else []
    lines += [fmt.format(*headers)]
    lines += [fmt.format(*r) for r in rows]
    if status.foreign:
        lines.append(f"note: {status.foreign} record(s) in {status.root}/runs belong to no run of this grid "
                     f"(the study file changed?); they are left alone")
    lines += status.cost.lines() if status.cost is not None else []
    lines += [f"warning: {p}" for p in status.problems]
    return "\n".join(lines)


def _si(flops: int) -> str:
    return tqdm.format_sizeof(flops)  # 1.66T: three significant digits, SI prefixes
