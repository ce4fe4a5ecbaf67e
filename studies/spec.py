"""A study, once validated: its name, its grid, the fixed overrides and the run policy, and the runs it expands to.

`Study.runs()` is the cartesian product of the grid in the order the file lists its keys (the last key varies
fastest), each point merged over `fixed` and built into a `speedrun.TrainConfig`. A run's identity is
`speedrun.run_id(config)`; execution-only fields (device, data_dir, threads, ...) are applied later, per
machine, and never change it.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from speedrun import TrainConfig, run_id

__all__ = ["Study", "Policy", "Run"]


@dataclass(frozen=True)
class Policy:
    retries: int = 1  # extra attempts after a failed one (0: try once)
    timeout_s: float | None = None  # per attempt; checked after every epoch (None: no limit)
    kill_grace_s: float = 300.0  # an attempt still running this long past timeout_s has its worker ended


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

    @property
    def cell_fields(self) -> tuple[str, ...]:
        """Grid axes that define a cell; seeds are repeats within a cell."""
        return tuple(k for k in self.grid if k != "seed")

    def points(self) -> list[dict[str, Any]]:
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def runs(self) -> list[Run]:
        """Every run of the grid, in grid order. Raises speedrun.ConfigError for an invalid point (load_study
        has already checked every point, so this only happens for a Study built by hand)."""
        out = []
        for point in self.points():
            config = TrainConfig(**{**self.fixed, **point})
            out.append(Run(run_id(config), config, point))
        return out
