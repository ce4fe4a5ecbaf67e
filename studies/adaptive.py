"""Adaptive seeds (`studies run NAME --adaptive`, policy in the study's [adaptive] table): spend seeds where the
uncertainty that matters is largest, and stop at the target, at max_seeds per cell, or at the FLOP budget.

Rounds. Round 0 gives every cell min_seeds seeds. Each later round adds `batch` seeds, chosen from the committed
records of the runs chosen so far and from nothing else: `replay` rebuilds every round from the results folder,
so a restarted scheduler makes the same choices and resumes the round that was under way, and two schedulers
choose the same runs (their locks keep each run to one of them). A round is complete when each of its runs has
an ok or a diverged record; a failed run holds the policy until a rerun gets it through. A cell's seeds are the
grid's listed seeds, then the next integers after the largest (Study.seeds).

Targets (accuracy points, i.e. percent):
- target_se: every cell's standard error of ema_val_acc (seed sd / sqrt(n) over its ok runs; the sd is the
  cell's own pulled towards the pool of all cells', in points or relative to each cell's error, by default
  whichever the cells' spread favours: see shrunk_sds, NOISE_MODELS and choose_noise). Each seed goes to the
  cell whose standard error is largest relative to the target (worst first, so a budget that runs out leaves
  the grid as even in precision as it can); a cell with fewer than two ok runs has no standard error yet and
  comes first.
- target_halfwidth: the half-width of the law's 95% interval (ci95 or pi95) at the named cell `at`. The law is
  fitted by analysis, which studies may not import: the fit runs as a subprocess, the `predictor` command
  (default `python -m analysis predict DIR --width W --epochs E --format json`; see studies/README.md). Each
  candidate cell is scored by asking the predictor again with one more record in that cell at the cell's mean
  accuracy (a fantasy record, in a temporary folder, never in results): the seed goes where the interval shrinks
  most per FLOP. Answers are cached by the hash of the records they were given (<study>/adaptive/), so a replay
  does not refit; the cache is only a cache — deleting it costs time, not choices, as long as the predictor is
  deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import speedrun

from common.pooling import SCHEDULER_PRIOR_DOF, moderated_variance
from common.states import is_final_status

from .predictor import Predictor, PredictorError
from .spec import Adaptive, Run, Study
from .store import StudyPaths

__all__ = ["CellState", "Replay", "replay", "decide", "Decision", "shrunk_sds", "PRIOR_DF", "NOISE_MODELS",
           "NOISE_CHOICES", "choose_noise", "noise_loglik"]

# Degrees of freedom the pooled seed sd lends each cell's own (see shrunk_sds). In simulation (scaling's grid,
# results/benchmarks/adaptive-seeds/, 100 replicates) a cell's own sd alone (0) left the worst cell at up to 2.4x
# the target standard error on average; 5 kept it at 1.1-1.5x while still giving noisier cells more seeds; full
# pooling (1000) ignores that the noise differs between cells, and fewer cells met the target when it did.
# common.pooling holds it beside the fit's value and says why the two differ.
PRIOR_DF = SCHEDULER_PRIOR_DOF


def _error_points(cell: "CellState") -> float:
    return 100.0 - cell.mean


# How one cell's seed sd borrows from the others' (the [adaptive] table's `noise`): the scale each cell's sd is
# divided by before pooling and multiplied by after. "proportional" pools the sd relative to the cell's error,
# 100 - mean accuracy in points, as analysis models seed noise (on cpu-scaling, cells from 73% to 94% accuracy,
# the sd grows with the error at a slope of 1.5 +- 0.45 on log scales); "constant" pools the sd itself, for grids
# whose cells spread alike whatever their accuracy. `noise = "auto"` (the default) takes, each round, the one
# under which the cells' spread is likelier (choose_noise).
NOISE_MODELS = {
    "proportional": _error_points,
    "constant": lambda cell: 1.0,
}
NOISE_CHOICES = ("auto", *NOISE_MODELS)


def noise_loglik(cells: list["CellState"], noise: str) -> float:
    """Log-likelihood of the cells' spread about their own means (sums of squares, df = n - 1 each) when one run's
    sd is r times the cell's scale, with r pooled (its maximum-likelihood value); -inf without any spread."""
    rows = [(len(c.values) - 1, c.sd ** 2 * (len(c.values) - 1), NOISE_MODELS[noise](c))
            for c in cells if len(c.values) >= 2]
    dof = sum(df for df, _, _ in rows)
    r2 = sum(ss / k ** 2 for _, ss, k in rows if k > 0) / dof if dof else 0.0
    if r2 <= 0 or any(k <= 0 for _, _, k in rows):
        return -math.inf
    return -0.5 * sum(df * math.log(r2 * k ** 2) + ss / (r2 * k ** 2) for df, ss, k in rows)


def choose_noise(cells: list["CellState"], noise: str) -> tuple[str, float]:
    """The model to pool with, and the log-likelihood margin of "proportional" over "constant" (NaN unless
    `noise` is "auto"). Both models have one parameter, so the likelier wins; a tie (one cell) is "constant",
    where the two agree anyway."""
    if noise != "auto":
        return noise, math.nan
    margin = noise_loglik(cells, "proportional") - noise_loglik(cells, "constant")
    return ("proportional" if margin > 0 else "constant"), margin


@dataclass(frozen=True)
class CellState:
    cell: dict  # grid values without the seed
    seeds: tuple[int, ...]  # chosen so far
    values: tuple[float, ...]  # ema_val_acc of its ok runs, in points
    flops: int  # training FLOPs of one more run here
    records: tuple[dict, ...] = ()  # its final records, in seed order

    @property
    def mean(self) -> float:
        """Mean ema_val_acc of its ok runs, in points (NaN without any)."""
        return math.fsum(self.values) / len(self.values) if self.values else math.nan

    @property
    def sd(self) -> float | None:
        """Sample standard deviation (n - 1), in points; None under two ok runs."""
        if len(self.values) < 2:
            return None
        mean = self.mean
        return math.sqrt(math.fsum((v - mean) ** 2 for v in self.values) / (len(self.values) - 1))

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(len(self.values)) if self.sd is not None else math.inf

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.cell.items()) or "the only cell"


@dataclass(frozen=True)
class Decision:
    add: tuple[int, ...]  # indices into the cells, one per seed to add (a cell may appear more than once)
    stop: str | None  # why the policy stops (None: add these)
    measure: str  # the uncertainty that matters, now, in words
    problem: bool = False  # it stopped because the law could not answer, not by its own rules


@dataclass
class Replay:
    round: int  # the round under way, or the last one when the policy stopped
    chosen: list[Run]  # every run chosen so far, round after round
    todo: list[Run]  # chosen runs without a final record: the round under way (empty when stopped)
    decision: Decision | None  # the last decision taken (None while round 0 is under way)
    flops: int  # training FLOPs of all chosen runs
    cells: list[CellState] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        return not self.todo and self.decision is not None and self.decision.stop is not None


def replay(study: Study, paths: StudyPaths, predictor: Predictor | None = None) -> Replay:
    """Rebuild the rounds from the committed records; stops at the first round with runs lacking a final record
    (the round under way) or where the policy stops."""
    policy = _policy(study)
    cells = study.cells()
    counts = [policy.min_seeds] * len(cells)
    decision, round_no = None, 0
    final: dict = {}  # run_id -> RecordState of runs with a final record (they never change: read each once)
    while True:
        chosen = [study.run_at({**cell, "seed": seed}) for cell, n in zip(cells, counts) for seed in study.seeds(n)]
        states = {r.run_id: final.get(r.run_id) or paths.read(r.run_id) for r in chosen}
        final.update({rid: st for rid, st in states.items() if is_final_status(st.state)})
        flops = sum(_flops(r) for r in chosen)
        todo = [r for r in chosen if not is_final_status(states[r.run_id].state)]
        if todo:
            return Replay(round_no, chosen, todo, decision, flops)
        cell_states = [_cell_state(study, cell, n, states) for cell, n in zip(cells, counts)]
        decision = decide(policy, cell_states, flops, predictor)
        if decision.stop is not None:
            return Replay(round_no, chosen, [], decision, flops, cell_states)
        for i in decision.add:
            counts[i] += 1
        round_no += 1


def decide(policy: Adaptive, cells: list[CellState], spent: int, predictor: Predictor | None, *,
           prior_df: float | None = None) -> Decision:
    """The next round's seeds from complete cells' records (pure but for the predictor's answers). `prior_df`
    overrides PRIOR_DF (for the simulation benchmark's sensitivity study only)."""
    if policy.target_se is not None:
        return _decide_se(policy, cells, spent, PRIOR_DF if prior_df is None else prior_df)
    if predictor is None:
        raise ValueError("target_halfwidth needs a predictor")
    return _decide_law(policy, cells, spent, predictor)


def _decide_se(policy: Adaptive, cells: list[CellState], spent: int, prior_df: float = PRIOR_DF) -> Decision:
    target = policy.target_se
    noise, margin = choose_noise(cells, policy.noise)
    sds = shrunk_sds(cells, prior_df, noise)
    n = [len(c.values) for c in cells]
    chosen = [len(c.seeds) for c in cells]

    def se(i: int) -> float:  # as if the seeds this round adds come out ok, with the spread estimated so far
        return sds[i] / math.sqrt(n[i]) if n[i] >= 2 else math.inf

    now = [se(i) for i in range(len(cells))]
    worst = max(range(len(cells)), key=lambda i: (now[i], -i))
    measure = (f"largest standard error {_points(now[worst])} at {cells[worst].label()} "
               f"({n[worst]} ok run(s); seed sd pooled as {noise}{_auto_words(margin)}); target {target:g} points")
    add: list[int] = []
    for _ in range(policy.batch):
        above = [i for i in range(len(cells)) if se(i) > target and chosen[i] < policy.max_seeds]
        affordable = [i for i in above if _fits(policy, spent, cells[i].flops)]
        if not affordable:
            break
        best = max(affordable, key=lambda i: (se(i), -cells[i].flops, -i))
        add.append(best)
        n[best], chosen[best], spent = n[best] + 1, chosen[best] + 1, spent + cells[best].flops
    if add:
        return Decision(tuple(add), None, measure)
    above = [i for i in range(len(cells)) if now[i] > target]
    if not above:
        return Decision((), f"target met: every cell's standard error is at most {target:g} points", measure)
    capped = [cells[i] for i in above if len(cells[i].seeds) >= policy.max_seeds]
    if len(capped) == len(above):
        return Decision((), f"max_seeds = {policy.max_seeds} reached in every cell still above the target "
                            f"({', '.join(c.label() for c in capped)})", measure)
    return Decision((), f"budget: one more seed would take the study past budget_flops = "
                        f"{policy.budget_flops:.3g} ({spent:.3g} spent)", measure)


def _auto_words(margin: float) -> str:
    if math.isnan(margin):
        return ""
    shown = f"{margin:+.1f}" if math.isfinite(margin) else "undefined"
    return f", chosen by noise = auto: log-likelihood {shown} for proportional against constant"


def shrunk_sds(cells: list[CellState], prior_df: float = PRIOR_DF, noise: str = "proportional") -> list[float]:
    """Each cell's seed sd, pulled towards the pooled sd of all cells, on the scale of the noise model
    (NOISE_MODELS): with r = sd / scale, r^2 becomes ((n-1) r^2 + prior_df r_pool^2) / (n - 1 + prior_df), and
    the sd is r times the cell's scale again. A cell's own sd from 3-5 seeds is often far too small by chance, and
    stopping on it leaves cells short (results/benchmarks/adaptive-seeds/); the pool lends it prior_df degrees of
    freedom. Cells with under two ok runs get the pooled r (infinite when no cell has two; NaN without any ok
    run under "proportional", whose scale needs a mean)."""
    scale = [NOISE_MODELS[choose_noise(cells, noise)[0]](c) for c in cells]
    dfs = [len(c.values) - 1 for c in cells]
    rel = [(c.sd / k if k > 0 else 0.0) if df >= 1 else math.nan for c, k, df in zip(cells, scale, dfs)]
    num = sum(df * r ** 2 for df, r in zip(dfs, rel) if df >= 1)
    den = sum(df for df in dfs if df >= 1)
    pooled = num / den if den else math.inf
    return [k * math.sqrt(moderated_variance(r ** 2, df, pooled, prior_df)) if df >= 1 and den else
            k * math.sqrt(pooled) for df, r, k in zip(dfs, rel, scale)]


def _decide_law(policy: Adaptive, cells: list[CellState], spent: int, predictor: Predictor) -> Decision:
    target = policy.target_halfwidth
    base = [r for c in cells for r in c.records]
    try:
        now = predictor(base)
    except PredictorError as e:
        return Decision((), f"the law cannot be fitted yet: {e}", "unknown", problem=True)
    if now.get("not_identified"):
        return Decision((), f"the law's {', '.join(map(str, now['not_identified']))} are not identified by this "
                            f"grid; more seeds cannot pin them down — add grid values instead", _law_words(policy, now),
                        problem=True)
    width = _halfwidth(now, policy.interval)
    measure = _law_words(policy, now)
    if width <= target:
        return Decision((), f"target met: the {policy.interval} half-width is at most {target:g} points", measure)
    gains: dict[int, float] = {}
    for i, cell in enumerate(cells):
        if len(cell.seeds) >= policy.max_seeds or not cell.values:
            continue
        try:
            after = _halfwidth(predictor(base + [_fantasy(cell)]), policy.interval)
        except PredictorError:
            continue
        if after < width:
            gains[i] = (width - after) / cell.flops
    add: list[int] = []
    for i in sorted(gains, key=lambda i: (-gains[i], cells[i].flops, i)):
        if len(add) == policy.batch:
            break
        if _fits(policy, spent, cells[i].flops):
            add.append(i)
            spent += cells[i].flops
    if add:
        return Decision(tuple(add), None, measure)
    if not gains:
        open_cells = [c for c in cells if len(c.seeds) < policy.max_seeds]
        why = (f"max_seeds = {policy.max_seeds} reached in every cell" if not open_cells else
               "no added seed narrows the interval: its width comes from the law's form or the grid's span, "
               "not from seed noise")
        return Decision((), why, measure)
    return Decision((), f"budget: the next useful seed would take the study past budget_flops = "
                        f"{policy.budget_flops:.3g} ({spent:.3g} spent)", measure)


def _fantasy(cell: CellState) -> dict:
    """One more record in `cell` at its mean accuracy: what a new seed is expected to add (for scoring only)."""
    model = next(r for r in cell.records if r.get("status") == "ok")
    config = speedrun.TrainConfig(**{**model["config"], "seed": max(cell.seeds) + 1})
    return {**model, "run_id": speedrun.run_id(config), "config": config.to_dict(), "fantasy": True,
            "ema_val_acc": cell.mean / 100}


def _cell_state(study: Study, cell: dict, n: int, states: dict) -> CellState:
    runs = [study.run_at({**cell, "seed": seed}) for seed in study.seeds(n)]
    records = tuple(states[r.run_id].record for r in runs)
    values = tuple(100 * r["ema_val_acc"] for r in records
                   if r.get("status") == "ok" and isinstance(r.get("ema_val_acc"), (int, float)))
    nxt = study.run_at({**cell, "seed": study.seeds(n + 1)[-1]})
    return CellState(cell, tuple(study.seeds(n)), values, _flops(nxt), records)


def _halfwidth(answer: dict, interval: str) -> float:
    lo, hi = answer[interval]
    return 100 * (hi - lo) / 2  # the predictor answers in ema_val_acc's units: fractions


def _law_words(policy: Adaptive, answer: dict) -> str:
    at = " × ".join(f"{k} {v}" for k, v in policy.at.items())
    flags = "".join(f", {w}" for w in ("provisional", "extrapolated") if answer.get(w))
    return (f"{policy.interval} half-width {_points(_halfwidth(answer, policy.interval))} at {at} "
            f"(law {answer.get('law')}, {answer.get('n_runs')} runs{flags}); target {policy.target_halfwidth:g} points")


def _fits(policy: Adaptive, spent: int, flops: int) -> bool:
    return policy.budget_flops is None or spent + flops <= policy.budget_flops


def _points(value: float) -> str:
    return "undefined (under 2 ok runs)" if math.isinf(value) else f"{value:.3f} points"


def _flops(run: Run) -> int:
    return int(speedrun.train_flops(run.config))


def _policy(study: Study) -> Adaptive:
    if study.adaptive is None:
        raise ValueError(f"study {study.name!r} has no [adaptive] table; add one to use --adaptive "
                         f"(see studies/README.md)")
    return study.adaptive
