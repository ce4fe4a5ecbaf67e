"""Timing a few networks within a fixed time, for the cost estimate of runs that no finished record covers.

A grid may hold dozens of distinct networks (widths); timing each in a fresh `speedrun bench` took 347 s for 20
widths on the 2-core dev VM. Instead at most BENCH_NETWORKS of them are timed — the smallest and largest by
forward FLOPs per image first, then ones in between — in ONE subprocess (one torch import, CUDA never touched in
the scheduler), stopped BENCH_BUDGET_S after its start-up (the first network is always waited for, up to a
minute, so that there is an estimate at all; a later one that would not fit in what is left, at the rate measured
so far, is skipped). Every other network gets the training FLOP/s
interpolated linearly in log(FLOPs per image) between the timed ones, held constant outside their range; the
estimate's rate line says which were timed and how many were interpolated.

The subprocess can be started before the grid is even read (`prestart`, by `run --dry-run`), so that its torch
import overlaps the expansion. On a CPU a network is timed on a smaller batch (cpu_batch): a width-128 step of
the recipe's 512 images held 3.3 GB and took a minute on one thread, while its FLOP/s at 128 images were within 6%
of the full batch's (249 against 265 GFLOP/s, 2 threads, on the 2-core AMD VM of 2026-12-07). A GPU times the
run's own batch: its speed depends on it.
"""
from __future__ import annotations

import atexit
import json
import math
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import speedrun

from .plugins import checkout_env

__all__ = ["BENCH_NETWORKS", "BENCH_BUDGET_S", "Timed", "pick", "prestart", "bench_within", "interpolate",
           "cpu_batch"]

BENCH_NETWORKS = 3  # networks timed at most per device: the ends of the FLOPs range and its middle
BENCH_BUDGET_S = 5.0  # wall seconds of timing after the subprocess has started; what is unfinished is interpolated
_FIRST_LIMIT_S = 60.0  # but the first (smallest) network is waited for this long, start-up included: some estimate
_STEPS, _WARMUP = 3, 1  # a few steps: a rate good to tens of percent, which is what the estimate's range claims
# On a CPU, batch x width stays under this: a step's activations grow with both, so its memory stays about that of
# 128 images at width 128 (the child's peak there: 2.0 GB, of which 0.5 GB is the torch import itself).
_CPU_BATCH_WIDTH = 128 * 128

# Runs in the subprocess: one JSON config per stdin line in, one `speedrun.bench` result per stdout line out.
_SCRIPT = ("import json, sys\nfrom speedrun import TrainConfig\nfrom speedrun.bench import bench\n"
           "print('ready', flush=True)\n"
           "for line in sys.stdin:\n"
           f"    print(json.dumps(bench(TrainConfig(**json.loads(line)), steps={_STEPS}, warmup={_WARMUP})), "
           "flush=True)\n")


@dataclass(frozen=True)
class Timed:
    """One timed network: its forward FLOPs per image and its training-step FLOP/s."""

    width: int
    flops_per_image: float
    rate: float  # training FLOP/s of the step (train_gflops_per_s * 1e9)
    device_name: str
    batch_size: int | None = None  # the batch it was timed on (cpu_batch)


def flops_per_image(config: speedrun.TrainConfig) -> float:
    return float(speedrun.model_stats(config)["forward_flops_per_image"])


def pick(configs: list[speedrun.TrainConfig], n: int = BENCH_NETWORKS) -> list[speedrun.TrainConfig]:
    """Up to `n` configs spread over the FLOPs range, in the order to time them: smallest, largest, then between."""
    ordered = sorted(configs, key=flops_per_image)
    if len(ordered) <= n:
        chosen = ordered
    else:
        chosen = [ordered[round(i * (len(ordered) - 1) / (n - 1))] for i in range(n)] if n > 1 else ordered[:1]
    return list(dict.fromkeys([chosen[0], chosen[-1], *chosen]))


def cpu_batch(config: speedrun.TrainConfig) -> int:
    """The batch a network is timed with: the run's own, on a CPU at most _CPU_BATCH_WIDTH / width images."""
    if config.device != "cpu":
        return config.batch_size
    return max(1, min(config.batch_size, _CPU_BATCH_WIDTH // config.width))


class _Bencher:
    """The bench subprocess and a thread that reads its lines (`ready` once imported, then one result each)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=checkout_env())
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_prestarted: _Bencher | None = None


def prestart() -> None:
    """Start the bench subprocess now, so that its imports overlap what the caller does before it asks for a bench
    (a 100,000-run dry run's expansion). Ended at exit if no bench takes it; harmless when none is needed."""
    global _prestarted
    if _prestarted is None:
        try:
            _prestarted = _Bencher()
        except OSError:
            return
        atexit.register(_prestarted.close)


def bench_within(configs: list[speedrun.TrainConfig], budget_s: float = BENCH_BUDGET_S) -> list[Timed]:
    """Time `configs` (device and threads already set; a CPU's batch is cut to cpu_batch) in order, in one
    subprocess, for at most `budget_s` after it is ready. After the first, a network whose steps would not fit in
    what is left of the budget, at the best rate measured so far, is not started (nor its memory taken)."""
    global _prestarted
    bencher, _prestarted = _prestarted, None
    try:
        bencher = bencher or _Bencher()
    except OSError:
        return []
    pending = [c.replace(batch_size=cpu_batch(c)) for c in configs]
    current = _send(bencher, pending.pop(0)) if pending else None
    first_deadline = time.monotonic() + _FIRST_LIMIT_S
    deadline = first_deadline  # until the subprocess says it is ready (imports take seconds on a busy machine)
    timed: list[Timed] = []
    while current is not None:
        wait = (deadline if timed else max(deadline, first_deadline)) - time.monotonic()
        try:
            line = bencher.lines.get(timeout=max(0.0, wait))
        except queue.Empty:
            break  # the budget is spent: what is unfinished is interpolated instead
        if line is None:
            break
        if line.strip() == "ready":  # now, or already while the caller worked (prestart): the budget starts now
            now = time.monotonic()
            deadline = now + budget_s
            first_deadline = min(first_deadline, now + _FIRST_LIMIT_S)
            continue
        try:
            result = json.loads(line)
        except ValueError:
            continue
        timed.append(Timed(current.width, flops_per_image(current), result["train_gflops_per_s"] * 1e9,
                           result["device_name"], current.batch_size))
        rate, left = max(t.rate for t in timed), deadline - time.monotonic()
        while pending and _bench_flops(pending[0]) / rate > left:
            pending.pop(0)
        current = _send(bencher, pending.pop(0)) if pending else None
    bencher.close()
    return timed


def _send(bencher: _Bencher, config: speedrun.TrainConfig) -> speedrun.TrainConfig | None:
    try:
        bencher.proc.stdin.write(json.dumps(config.to_dict()) + "\n")
        bencher.proc.stdin.flush()
    except OSError:
        return None  # it died; nothing more to time
    return config


def _bench_flops(config: speedrun.TrainConfig) -> float:
    """Training FLOPs of timing `config`: its warm-up and timed steps."""
    return float(speedrun.train_flops(config, (_STEPS + _WARMUP) * config.batch_size))


def interpolate(timed: list[Timed], fpi: float) -> float:
    """Training FLOP/s at `fpi` forward FLOPs per image: linear in log(FLOPs) between timed networks, the nearest
    one's rate outside their range (no extrapolated trend: small nets are overhead-bound, large ones saturate)."""
    points = sorted((math.log(t.flops_per_image), t.rate) for t in timed)
    x = math.log(fpi)
    if x <= points[0][0]:
        return points[0][1]
    if x >= points[-1][0]:
        return points[-1][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y0
    return points[-1][1]
