"""Cost before launch: the training FLOPs a study has done and has left, and the wall time the rest should take
on the devices it would use, as a range with the source of its rate.

The rate is the *effective* FLOP/s of whole runs: `train_flops / wall_time_s` of finished records. wall_time_s
is the whole `train()` call (data loading, whitening, training and evaluation): what a run costs its device.
train_time_s would leave out evaluation (4-15% of a run here, more with small training subsets), so estimates
from it would come out short. Left out: the scheduler's per-run bookkeeping (lock, log, record: well under a
second) and each worker's start-up (imports, CUDA context: seconds, once per slot).

Rates come from the first source that has them, per run:
1. this study's finished records on the same device_name, for runs like it (same config but seed and epochs);
2. any finished record under the results root on that device, for runs like it;
3. a quick `speedrun bench` on the spot (dry run only; it times training steps, so the range adds the evaluation
   and data overhead that records under the results root show, wall_time_s / train_time_s). At most a few
   networks are timed, within a fixed time, and the rest interpolated by FLOPs per image (netbench.py).
A rate's range is the spread of its records (min to max); a single record gets the relative spread of the
device's other groups. With p devices, the wall time of runs taking t_i each lies between max(sum t/p, max t)
and sum t/p + (1 - 1/p) max t (greedy list scheduling: Graham's bound).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import speedrun

from .devices import Slot, gpu_names
from .fsutil import host
from .netbench import BENCH_BUDGET_S, bench_within, flops_per_image, interpolate, pick
from .plan import FINAL, Plan
from .spec import Run

__all__ = ["Cost", "study_cost", "plan_cost", "RATE_FIELDS"]

# Config fields that do not change a run's speed per FLOP: the seed, and epochs (FLOPs already scale with it).
_IGNORED = {"seed", "epochs"} | set(speedrun.EXECUTION_FIELDS)
# A looser match: what sets the kernels' speed.
RATE_FIELDS = ("width", "batch_size", "precision", "compile", "cuda_graph")
_DEFAULT = speedrun.TrainConfig()
_SINGLE_SPREAD = 1.15  # one record and nothing to compare: +-15% (bench repeats on the dev VM: results/benchmarks)
# Whole run / training loops when no record measures it: evaluation, data loading and whitening add 0-50% (the
# quick study's records, with an evaluation every epoch on 1,000 test images, show 1.1-1.4).
_UNMEASURED_OVERHEAD = (1.0, 1.5)


@dataclass(frozen=True)
class Cost:
    flops_done: int
    flops_left: int
    runs_left: int
    seconds: tuple[float, float] | None = None  # wall time of the runs left; None when no rate covers them all
    parallel: int | None = None  # runs at once the range assumes; None: device time (a cluster decides)
    devices: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # one phrase per rate source used, with its count of runs and records
    missing: tuple[str, ...] = ()  # run groups no rate covers

    def lines(self) -> list[str]:
        total = self.flops_done + self.flops_left
        out = [f"compute: {_si(total)}FLOP in all — {_si(self.flops_done)}FLOP done, {_si(self.flops_left)}FLOP "
               f"left in {self.runs_left} run(s)"]
        if not self.runs_left:
            return out
        where = ", ".join(self.devices) or "the devices records name"
        if self.seconds is not None:
            lo, hi = self.seconds
            span = (f"{self.parallel} at a time on {where}" if self.parallel else
                    f"device time on {where}; divide by the number of workers")
            out.append(f"estimated time left: {_hms(lo)} to {_hms(hi)} ({span})")
        else:
            out.append(f"estimated time left: unknown — no rate for {', '.join(self.missing)}")
        out += [f"  rate: {s}" for s in self.sources]
        return out


@dataclass
class _Rates:
    """One device's records as rates: whole-run FLOP/s (train_flops / wall_time_s) of runs like a given one, and
    training-loop FLOP/s (train_flops / train_time_s) of runs with the same kernels (RATE_FIELDS)."""

    exact: dict[tuple, list[float]] = field(default_factory=dict)
    loose: dict[tuple, list[float]] = field(default_factory=dict)

    def add(self, record: dict) -> None:
        config, flops = record["config"], record["train_flops"]
        self.exact.setdefault(_exact_key(config), []).append(flops / record["wall_time_s"])
        train_s = record.get("train_time_s")
        if isinstance(train_s, (int, float)) and train_s > 0:
            self.loose.setdefault(_loose_key(config), []).append(flops / train_s)


def plan_cost(plan: Plan, slots: list[Slot] | None, results_root: str | Path, *, bench: bool = False) -> Cost:
    """The cost of what `plan` has left (failed, running, pending runs), on `slots`."""
    left = [r for r in plan.runs if plan.state[r.run_id] not in FINAL]
    done = [plan.records[r.run_id] for r in plan.runs if plan.state[r.run_id] in FINAL]
    return study_cost(left, done, slots, study_records=list(plan.records.values()), results_root=results_root,
                      study_dir=plan.paths.root, bench=bench)


@dataclass(frozen=True)
class _Target:
    """A device runs would use: the device_name its records carry (None: not known before a bench names it), and
    how to bench it here (None: it is not here, e.g. a cluster's worker)."""

    name: str | None
    bench: dict | None  # the config fields that place a bench on it ({"device": "cuda:0"}); None: not here
    label: str


def study_cost(runs_left: list[Run], done_records: list[dict], slots: list[Slot] | None, *, study_records: list[dict],
               results_root: str | Path, study_dir: str | Path | None = None, bench: bool = False) -> Cost:
    """FLOPs and a wall-time range for `runs_left` on `slots` (None: a cluster, so device time on the devices this
    study's records name). `done_records`: finished records whose FLOPs count as done; `study_records`: this
    study's records (any status); `bench`: run `speedrun bench` for runs no record covers."""
    flops_done = sum(int(r.get("train_flops") or 0) for r in done_records)
    flops: dict[str, int] = {}
    by_point: dict[tuple, int] = {}  # the seed changes no FLOPs: one count per grid point without it
    for r in runs_left:
        key = tuple((k, v) for k, v in r.point.items() if k != "seed")
        if key not in by_point:
            by_point[key] = int(speedrun.train_flops(r.config))
        flops[r.run_id] = by_point[key]
    base = dict(flops_done=flops_done, flops_left=sum(flops.values()), runs_left=len(runs_left))
    if not runs_left:
        return Cost(**base)
    own = [r for r in study_records if _usable(r)]
    root_records = _records_under(Path(results_root), exclude=Path(study_dir) if study_dir else None)
    targets = _targets(slots, runs_left, own, own + root_records)
    if not targets:
        return Cost(**base, missing=("the cluster's devices (no finished record of this study names them yet)",))
    tiers = [("this study's records", _by_device(own)), (f"records under {results_root}", _by_device(root_records))]
    overhead = _overhead(own) or _overhead(root_records)  # this study's evaluation settings first
    ranges: dict[str, list[tuple[float, float]]] = {r.run_id: [] for r in runs_left}
    used: dict[str, set] = {}
    missing: list[str] = []
    # Runs differing only in seed or epochs share their rate: look each group up once (100,000 runs, ~20 groups).
    groups: dict[tuple, list[Run]] = {}
    for run in runs_left:
        groups.setdefault(tuple((k, v) for k, v in run.point.items() if k not in _IGNORED), []).append(run)

    def assign(members: list[Run], found: tuple[tuple[float, float], str]) -> None:
        (lo_rate, hi_rate), source = found
        for run in members:
            ranges[run.run_id].append((flops[run.run_id] / hi_rate, flops[run.run_id] / lo_rate))
            used.setdefault(source, set()).add(run.run_id)

    for target in targets:
        unrated: list[list[Run]] = []
        for members in groups.values():
            found = _from_tiers(tiers, target.name, members[0].config.to_dict(), overhead) if target.name else None
            if found is not None:
                assign(members, found)
            else:
                unrated.append(members)
        benched = _bench_groups(target, unrated, overhead) if bench and unrated and target.bench is not None else {}
        for members in unrated:
            if id(members) in benched:
                assign(members, benched[id(members)])
            else:
                missing.append(f"width {members[0].config.width} on {target.label}")
    labels = tuple(t.label for t in targets)
    sources = tuple(f"{s} — {len(ids)} run(s)" for s, ids in used.items())
    if missing:
        return Cost(**base, devices=labels, missing=tuple(dict.fromkeys(missing)), sources=sources)
    # Several kinds of device: a run may land on any, so its range spans the fastest to the slowest.
    times = [(min(lo for lo, _ in ranges[r.run_id]), max(hi for _, hi in ranges[r.run_id])) for r in runs_left]
    p = len(slots) if slots else 1
    lo = max(sum(t for t, _ in times) / p, max(t for t, _ in times))
    hi = sum(t for _, t in times) / p + (1 - 1 / p) * max(t for _, t in times)
    return Cost(**base, seconds=(lo, hi), parallel=len(slots) if slots else None, devices=labels, sources=sources)


def _from_tiers(tiers, device: str, config: dict, overhead) -> tuple[tuple[float, float], str] | None:
    """A whole-run rate range for `config` on `device`: runs like it from the first tier that has them, else the
    training-loop rate of runs with the same kernels, slowed by the evaluation and data overhead (wall/train)."""
    for name, by_device in tiers:
        rates = by_device.get(device)
        values = rates.exact.get(_exact_key(config)) if rates else None
        if values:
            spread = _spread(rates)
            lo, hi = (min(values), max(values)) if len(values) > 1 else (values[0] / spread, values[0] * spread)
            return (lo, hi), (f"{name} on {device}, runs like these: {_si(lo)}FLOP/s to {_si(hi)}FLOP/s "
                              f"(train_flops / wall_time_s, {len(values)} record(s))")
    for name, by_device in tiers:
        rates = by_device.get(device)
        values = rates.loose.get(_loose_key(config)) if rates else None
        if values:
            low, high = overhead or _UNMEASURED_OVERHEAD
            lo, hi = min(values) / high, max(values) / low
            return (lo, hi), (f"{name} on {device}, same {'/'.join(RATE_FIELDS)}: training loops at "
                              f"{_si(min(values))}FLOP/s to {_si(max(values))}FLOP/s ({len(values)} record(s)), "
                              f"{_overhead_words(overhead)}")
    return None


def _overhead_words(overhead) -> str:
    return (f"whole runs {overhead[0]:.2f}-{overhead[1]:.2f}x longer (wall/train time of this study's records, "
            f"else those under the results root)" if overhead else
            f"whole runs assumed {_UNMEASURED_OVERHEAD[0]:.1f}-{_UNMEASURED_OVERHEAD[1]:.1f}x longer (no record to "
            f"measure evaluation and data overhead)")


def _spread(rates: _Rates) -> float:
    """The largest max/min ratio among this device's groups with several records (a stand-in for one record)."""
    ratios = [max(v) / min(v) for v in rates.exact.values() if len(v) > 1]
    return max(ratios) ** 0.5 if ratios else _SINGLE_SPREAD


def _by_device(records: list[dict]) -> dict[str, _Rates]:
    out: dict[str, _Rates] = {}
    for r in records:
        out.setdefault(r["device_name"], _Rates()).add(r)
    return out


def _records_under(root: Path, exclude: Path | None) -> list[dict]:
    """Finished, timed records anywhere under `root` (study runs folders and single `speedrun train` records)."""
    if not root.is_dir():
        return []
    skip = exclude.resolve() if exclude is not None and exclude.exists() else None
    found = []
    for folder, dirs, files in os.walk(root):
        # Prune the excluded study whole (resolving each of its 10,000 records' paths took seconds).
        dirs[:] = [d for d in dirs if skip is None or Path(folder, d).resolve() != skip]
        for name in files:
            if name.startswith(".") or not name.endswith(".json"):
                continue
            try:
                record = json.loads(Path(folder, name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if _usable(record):
                found.append(record)
    return found


def _usable(record) -> bool:
    """An ok record with what a rate needs: FLOPs, a positive wall time, a device name and a config."""
    return (isinstance(record, dict) and record.get("status") == "ok" and isinstance(record.get("config"), dict)
            and isinstance(record.get("device_name"), str)
            and isinstance(record.get("train_flops"), (int, float)) and record["train_flops"] > 0
            and isinstance(record.get("wall_time_s"), (int, float)) and record["wall_time_s"] > 0)


def _targets(slots: list[Slot] | None, runs: list[Run], own: list[dict], records: list[dict]) -> list[_Target]:
    """The devices the runs would use. GPUs: named by nvidia-smi. This CPU: speedrun names it with its thread
    count, so a CPU is known by that name in this host's records (else only a bench can measure it).
    A cluster (slots None): the device names this study's finished records carry."""
    if slots is None:
        return [_Target(name, None, name) for name in sorted({r["device_name"] for r in own})]
    targets = []
    gpus = gpu_names()
    for slot in slots:
        if slot.device is not None and slot.device.startswith("cuda"):
            index = int(slot.device.partition(":")[2] or 0)
            name = gpus.get(index)
            targets.append(_Target(name, {"device": slot.device}, name or f"{slot.device} (unnamed)"))
            continue
        threads = slot.threads or runs[0].config.threads or _default_threads()
        cpu = _cpu_device_name(threads)  # as speedrun will name it in the records of these runs
        name = cpu if any(r.get("device_name") == cpu and r.get("host") == host() for r in records) else None
        targets.append(_Target(name, {"device": "cpu", "threads": threads},
                               name or f"this CPU with {threads} threads"))
    return list({t.label: t for t in targets}.values())


def _default_threads() -> int:
    import torch

    return torch.get_num_threads()


def _cpu_device_name(threads: int) -> str:
    import torch

    return speedrun.device_name(torch.device("cpu"), threads)


def _overhead(records: list[dict]) -> tuple[float, float] | None:
    """The range of wall_time_s / train_time_s over records: what evaluation and data add to training steps."""
    ratios = [r["wall_time_s"] / r["train_time_s"] for r in records
              if isinstance(r.get("train_time_s"), (int, float)) and r["train_time_s"] > 0]
    return (min(ratios), max(ratios)) if ratios else None


def _bench_groups(target: _Target, groups: list[list[Run]], overhead) -> dict[int, tuple[tuple[float, float], str]]:
    """Rates for run groups no record covers: a few of their networks timed within a fixed time (netbench), the
    rest interpolated by FLOPs per image. Keyed by id(group); empty when nothing could be timed."""
    networks: dict[tuple, speedrun.TrainConfig] = {}
    for members in groups:
        networks.setdefault(_loose_key(members[0].config.to_dict()), members[0].config.replace(**target.bench))
    timed = bench_within(pick(list(networks.values())))
    if not timed:
        return {}
    low, high = overhead or _UNMEASURED_OVERHEAD
    full = {c.width: c.batch_size for c in networks.values()}
    widths = ", ".join(f"{t.width}" + (f" on {t.batch_size} images a step" if t.batch_size != full.get(t.width) else "")
                       for t in sorted(timed, key=lambda t: t.flops_per_image))
    others = len(networks) - len(timed)
    source = (f"speedrun bench on {timed[0].device_name}: {len(timed)} of {len(networks)} network(s) timed within "
              f"{BENCH_BUDGET_S:g}s (width {widths}) at {_si(min(t.rate for t in timed))}FLOP/s to "
              f"{_si(max(t.rate for t in timed))}FLOP/s"
              + (f", the other {others} interpolated by FLOPs per image" if others else "")
              + f"; {_overhead_words(overhead)}")
    out = {}
    for members in groups:
        rate = interpolate(timed, flops_per_image(members[0].config))
        out[id(members)] = ((rate / high, rate / low), source)
    return out


def _exact_key(config: dict) -> tuple:
    return tuple(sorted((k, json.dumps(v)) for k, v in config.items() if k not in _IGNORED))


def _loose_key(config: dict) -> tuple:
    # A record written before a field existed ran with its default (cuda_graph came later).
    return tuple(config.get(k, getattr(_DEFAULT, k)) for k in RATE_FIELDS)


def _si(value: float) -> str:
    from tqdm import tqdm

    return tqdm.format_sizeof(value)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
