"""The adaptive loop: replay the rounds from the results folder, execute the round under way on the pool, and
again, until the policy stops (adaptive.py decides; this module only runs rounds and reports them)."""
from __future__ import annotations

import time
from typing import TextIO

import speedrun

from .adaptive import Replay, replay
from .backends import Pool
from .estimate import plan_cost
from .execute import Summary, execute_runs
from .plan import plan_runs
from .predictor import Predictor
from .spec import Study
from .store import StudyPaths

__all__ = ["run_rounds", "predictor_for", "describe_replay", "print_adaptive_dry_run", "WAIT_POLL_S"]

WAIT_POLL_S = 1.0  # how often to look again while another scheduler runs this round's last runs


def predictor_for(study: Study, paths: StudyPaths, *, write_cache: bool = True) -> Predictor | None:
    """The law's predictor for a law target (None for a per-cell target: no law needed)."""
    policy = study.adaptive
    if policy is None or policy.target_halfwidth is None:
        return None
    return Predictor(policy.predictor, policy.at, study.name, paths.adaptive, write_cache=write_cache)


def run_rounds(study: Study, paths: StudyPaths, pool: Pool, summary: Summary, err: TextIO, *,
               data_dir: str | None, progress: bool, on_record=None) -> None:
    """Execute rounds until the policy stops, a run fails (it holds the policy until a rerun gets it through),
    the disk is full, or the user interrupts (KeyboardInterrupt propagates)."""
    predictor = predictor_for(study, paths)
    while True:
        state = replay(study, paths, predictor)
        if state.stopped:
            summary.adaptive = describe_replay(state)
            summary.adaptive_problem = state.decision.problem
            summary.skipped = len(state.chosen) - summary.ok - summary.diverged
            return
        plan = plan_runs(study, paths, state.chosen)
        todo = [r for r in state.todo if plan.state[r.run_id] != "running"]
        if not todo:  # another scheduler is on this round's last runs: their records decide the next round
            time.sleep(WAIT_POLL_S)
            continue
        print(f"adaptive round {state.round}: {len(todo)} run(s) — {_why(state)}", file=err)
        failed, lost, elsewhere = summary.failed, summary.lost, summary.elsewhere
        execute_runs(study, paths, pool, todo, summary, err, data_dir=data_dir, progress=progress, on_record=on_record)
        if summary.elsewhere > elsewhere:  # claimed by another scheduler meanwhile: give it time to finish
            time.sleep(WAIT_POLL_S)
        if summary.no_space or summary.failed > failed or summary.lost > lost:
            summary.adaptive = (f"round {state.round} has failed run(s): they hold the policy (its next choices "
                                f"need their records); run the same command again to retry them")
            return


def describe_replay(state: Replay) -> str:
    """One line: where the policy stands."""
    if state.stopped:
        return f"stopped after round {state.round}: {state.decision.stop}; now {state.decision.measure}"
    return f"round {state.round} under way: {len(state.todo)} of its runs without a final record; {_why(state)}"


def print_adaptive_dry_run(study: Study, paths: StudyPaths, slots, results: str, out: TextIO, *,
                           bench: bool) -> Replay:
    """What `run --adaptive` would do next, and what is chosen so far, without writing anything."""
    state = replay(study, paths, predictor_for(study, paths, write_cache=False))
    plan = plan_runs(study, paths, state.chosen)
    policy = study.adaptive
    print(f"{study.name} (adaptive): {describe_replay(state)}", file=out)
    print(f"  {len(state.chosen)} run(s) chosen so far in {len(study.cells())} cell(s) "
          f"({plan.count('done')} done, {plan.count('diverged')} diverged, {len(plan.todo)} to run); "
          f"policy: min_seeds {policy.min_seeds}, max_seeds {policy.max_seeds}, batch {policy.batch}"
          + (f", budget {policy.budget_flops:.3g} FLOPs" if policy.budget_flops else ""), file=out)
    for run in state.chosen:
        print(f"  {plan.state[run.run_id]:<10} {run.run_id}  {run.label()}", file=out)
    for line in plan_cost(plan, slots, results, bench=bench).lines():
        print(f"  {line}" if line.startswith("  ") else line, file=out)
    chosen = {}
    for run in state.chosen:
        key = tuple(sorted((k, v) for k, v in run.point.items() if k != "seed"))
        chosen[key] = chosen.get(key, 0) + 1
    room = [(policy.max_seeds - chosen.get(tuple(sorted(c.items())), 0),
             _run_flops(study.run_at({**c, "seed": study.seeds(policy.max_seeds)[-1]}))) for c in study.cells()]
    more_runs, more_flops = sum(n for n, _ in room), sum(n * f for n, f in room)
    if policy.budget_flops is not None:
        more_flops = min(more_flops, max(0.0, policy.budget_flops - state.flops))
    if not state.stopped and more_runs > 0:
        print(f"later rounds: at most {more_runs} more run(s) up to max_seeds, at most {more_flops:.3g} more FLOPs"
              f"{' (budget_flops)' if policy.budget_flops is not None else ''}; how many depends on the spread "
              f"the records show", file=out)
    return state


def _run_flops(run) -> int:
    return int(speedrun.train_flops(run.config))


def _why(state: Replay) -> str:
    if state.decision is None:
        return "min_seeds in every cell"
    return f"after round {state.round - 1}, {state.decision.measure}"
