"""Reference samples of the seed (results/reference/*.json): its published numbers, or its own code run by us
(`python -m analysis seedlog`), loaded apart from our own run records."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AnalysisError

__all__ = ["Reference", "load_reference", "DEFAULT_REFERENCE"]

# Next to the package in a source checkout: <repo>/results/reference/.
DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference" / "hlb-cifar10-v0.3.0-w128-e80.json"


@dataclass(frozen=True)
class Reference:
    """A published sample of the headline metric, converted to fractions like our records."""

    name: str
    source: str
    width: int
    epochs: int
    metric: str  # "ema_val_acc"
    values: tuple[float, ...]  # fractions in [0, 1]
    published_values: tuple[float, ...]  # as published, in `units`
    units: str  # units of published_values: "percent" or "fraction"
    hardware: str
    note: str
    kind: str = "published_reference"  # or "measured_reference": the seed's code, run by us
    train_times: tuple[float, ...] = ()  # seconds per run, where measured alongside (measured references)
    recipe: dict = field(default_factory=dict)  # the run config the values come from, in TrainConfig's field names

    @property
    def provenance(self) -> str:
        return "published" if self.kind == "published_reference" else "the seed's code, run by us"

    @property
    def n(self) -> int:
        return len(self.values)


def load_reference(path: str | Path | None = None) -> Reference:
    """Read a reference file (default: the seed's seven width-128 × 80-epoch values) and check its stated mean."""
    path = Path(path) if path is not None else DEFAULT_REFERENCE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnalysisError(f"reference file {path} not found; it ships in results/reference/ of the source tree, "
                            "pass its path explicitly") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise AnalysisError(f"cannot read reference file {path}: {exc}") from None
    try:
        published = tuple(float(v) for v in data["values"])
        units = data["units"]
        scale = {"percent": 0.01, "fraction": 1.0}[units]
        config = data["config"]
        reference = Reference(name=data["name"], source=data["source"], width=int(config["width"]),
                              epochs=int(config["epochs"]), metric=data["metric"],
                              values=tuple(v * scale for v in published), published_values=published, units=units,
                              hardware=data.get("hardware", "unknown"), note=data.get("note", ""),
                              kind=data.get("kind", "published_reference"),
                              train_times=tuple(float(v) for v in data.get("train_time_s", ())),
                              recipe=dict(data.get("recipe", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnalysisError(f"reference file {path} lacks or mangles field {exc}; expected name, source, config "
                            "(width, epochs), metric, units ('percent' or 'fraction') and values") from None
    stated = data.get("mean")
    if stated is not None and abs(sum(published) / len(published) - stated) > 5e-4 * max(1.0, abs(stated)):
        raise AnalysisError(f"reference file {path}: the stated mean {stated} is not the mean of its values "
                            f"({sum(published) / len(published):.4f}); fix the file")
    return reference
