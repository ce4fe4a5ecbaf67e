"""A study, once validated: its name, its grid, the fixed overrides and the run policy, and the runs it expands to.

`Study.runs()` is the cartesian product of the grid in the order the file lists its keys (the last key varies
fastest), each point merged over `fixed` and built into a `speedrun.TrainConfig`. A run's identity is
`speedrun.run_id(config)`; execution-only fields (device, data_dir, threads, ...) are applied later, per
machine, and never change it.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from speedrun import ConfigError, TrainConfig, run_id, run_id_by_seed

__all__ = ["Study", "Policy", "Run", "Adaptive", "MAX_RUNS"]

# A grid larger than this is refused before it is expanded (a typo like seed = [0, ..., 9999] in a 3-axis grid):
# expanding, validating and planning cost about 0.1 ms and 1 kB per run, so 1,000,000 runs take minutes and a GB
# before anything is shown. `studies run/status --allow-large-grid` lifts it for a grid meant to be that large.
MAX_RUNS = 1_000_000


@dataclass(frozen=True)
class Policy:
    retries: int = 1  # extra attempts after a failed one (0: try once)
    timeout_s: float | None = None  # per attempt; checked after every epoch (None: no limit)
    kill_grace_s: float = 300.0  # an attempt still running this long past timeout_s has its worker ended


@dataclass(frozen=True)
class Adaptive:
    """`studies run --adaptive`: seeds go where the uncertainty that matters is largest (see adaptive.py)."""

    min_seeds: int = 3  # every cell gets this many seeds first
    max_seeds: int = 10  # and never more than this many
    batch: int = 1  # seeds added per round; the choices depend on it, so it lives here, not on the command line
    target_se: float | None = None  # stop when every cell's standard error of ema_val_acc is this small (points)
    target_halfwidth: float | None = None  # or when the law's interval at `at` is this narrow (half-width, points)
    at: dict[str, Any] | None = None  # the named cell for target_halfwidth, e.g. {"width": 128, "epochs": 80}
    interval: str = "ci95"  # which interval of the predictor: ci95 (the law's mean) or pi95 (one new run)
    budget_flops: float | None = None  # stop before the study's training FLOPs (all its runs) would pass this
    predictor: tuple[str, ...] = ("python", "-m", "analysis", "predict")  # the law's plug-in command
    noise: str = "auto"  # target_se: how cells pool their seed sd (adaptive.NOISE_CHOICES)


@dataclass(frozen=True)
class Run:
    run_id: str
    config: TrainConfig
    point: dict[str, Any]  # this run's grid values, e.g. {"width": 64, "epochs": 10, "seed": 3}

    def cell(self, cell_fields: tuple[str, ...]) -> tuple:
        """The grid cell this run belongs to: its grid values without the seed-like axes."""
        return tuple(self.point[k] for k in cell_fields)

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.point.items())


@dataclass(frozen=True)
class Study:
    name: str  # also the folder under the results root
    description: str
    grid: dict[str, tuple]  # field -> values, in file order
    fixed: dict[str, Any] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    source: str = ""  # the file it came from
    adaptive: Adaptive | None = None  # the [adaptive] table, used by `run --adaptive`
    after: tuple[str, ...] = ()  # the [after] command, run on the results once every run is ok (plugins.py)
    slurm: dict[str, Any] = field(default_factory=dict)  # the [slurm] table (slurm.py), for --backend slurm

    @property
    def cell_fields(self) -> tuple[str, ...]:
        """Grid axes that define a cell; seeds are repeats within a cell."""
        return tuple(k for k in self.grid if k != "seed")

    @property
    def size(self) -> int:
        """How many runs the grid expands to, computed without expanding it."""
        return math.prod(len(v) for v in self.grid.values())

    def points(self) -> list[dict[str, Any]]:
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def runs(self) -> list[Run]:
        """Every run of the grid, in grid order. Raises speedrun.ConfigError for an invalid point (load_study
        has already checked every point, so this only happens for a Study built by hand)."""
        return list(self._runs)

    @functools.cached_property
    def _runs(self) -> tuple[Run, ...]:
        # Built once per Study (planning, estimating and status all ask).
        return tuple(self.expand())

    def expand(self, on_error: Callable[[dict[str, Any], Exception], None] | None = None) -> list[Run]:
        """Every run of the grid, in grid order. Each cell's config is built and checked in full once; the cell's
        other seeds copy it with only the seed checked and share its run-id text (TrainConfig.with_seed,
        run_id_by_seed): 100,000 runs in about a second instead of four. An invalid point raises
        speedrun.ConfigError (TypeError, ValueError), or with `on_error` is handed to it and left out."""
        seeded = "seed" in self.grid
        cells: dict[tuple, tuple[TrainConfig, Callable[[int], str]]] = {}  # a cell's valid config and its ids
        runs = []
        cell_fields = self.cell_fields
        for point in self.points():
            cell = tuple(point[k] for k in cell_fields)
            try:
                known = cells.get(cell) if seeded else None
                if known is None:
                    run = self.run_at(point)
                    if seeded:
                        cells[cell] = (run.config, run_id_by_seed(run.config))
                else:
                    config = known[0].with_seed(point["seed"])
                    run = Run(known[1](config.seed), config, point)
            except (ConfigError, TypeError, ValueError) as e:
                if on_error is None:
                    raise
                on_error(point, e)
                continue
            runs.append(run)
        return runs

    def run_at(self, point: dict[str, Any]) -> Run:
        config = TrainConfig(**{**self.fixed, **point})
        return Run(run_id(config), config, point)

    def cells(self) -> list[dict[str, Any]]:
        """The grid's cells (points without the seed), in grid order."""
        keys = self.cell_fields
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def seeds(self, n: int) -> list[int]:
        """The first n seeds of a cell: the grid's listed ones, then the next integers after the largest."""
        listed = list(self.grid.get("seed", (self.fixed.get("seed", TrainConfig.seed),)))
        return (listed + list(range(max(listed) + 1, max(listed) + 1 + max(0, n - len(listed)))))[:n]
