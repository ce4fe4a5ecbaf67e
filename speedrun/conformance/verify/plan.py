"""What the proof runs: the commands of every stage, on a GPU (the real proof) or on the CPU (`--dry-run`: tiny,
synthetic, a few steps, so the script cannot rot unnoticed)."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Plan", "gpu_plan", "dry_plan", "FAST_MODES"]

# The fast arm's execution modes, tried in this order when one fails to build: flags of `speedrun train`.
FAST_MODES = {"compile+graph": ["--compile", "--cuda-graph"], "compile": ["--compile"], "graph": ["--cuda-graph"]}


@dataclass(frozen=True)
class Plan:
    dry_run: bool
    runs: int  # runs per side-by-side arm
    train_flags: list[str]  # our arms' `speedrun train` flags (data, width, epochs, device)
    seed_arm: str  # "main.py": the seed's file itself; "seed-cpu": its main() through seed_load; "standin"
    seed_cpu_flags: list[str]
    diff_args: list[str] | None  # speedrun.conformance.seed_diff; None: skipped (dry run without the seed's file)
    whiten_args: list[str]
    bench_widths: tuple[int, ...]
    bench_flags: list[str]
    fast_modes: tuple[str, ...]
    limits: dict = field(default_factory=dict)  # stage -> seconds at most
    child_env: dict = field(default_factory=dict)
    # Share of the side-by-side's time per arm (seed, ours eager, ours fast, seed): the first seed process also
    # turns the CIFAR-10 files into its data.pt cache, the fast one compiles.
    arm_weights: tuple[float, ...] = (1.3, 1.0, 1.6, 1.0)
    bench_reserve_s: float = 60.0  # kept for the benches while the side-by-side runs
    min_arm_s: float = 20.0  # an arm with less time than this is skipped (its process could not start and train)


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def gpu_plan(data_dir: Path, seed_main: Path, out: Path, runs: int, fast_modes: tuple[str, ...]) -> Plan:
    """The real proof on one GPU: width 64 × 10 epochs on CIFAR-10 in fp16, as the seed."""
    return Plan(
        dry_run=False, runs=runs, train_flags=["--width", "64", "--epochs", "10", "--data-dir", str(data_dir)],
        seed_arm="main.py", seed_cpu_flags=[],
        diff_args=_py("speedrun.conformance.seed_diff", "--seed-file", str(seed_main),
                      "--data-dir", str(data_dir), "--device", "cuda", "--precision", "fp16",
                      "--out", str(out / "seed_diff.json")),
        whiten_args=_py("speedrun.conformance.whiten_compare", "--data-dir", str(data_dir), "--device", "cuda",
                        "--data-dtype", "fp16", "--orders", "8", "--out", str(out / "whitening.json")),
        bench_widths=(64, 128), bench_flags=["--steps", "50", "--warmup", "10"], fast_modes=fast_modes,
        limits=dict(env=30, seed_diff=90, whitening=60), bench_reserve_s=60.0)


def dry_plan(seed_main: Path | None, out: Path) -> Plan:
    """Every stage on the CPU at toy size (width 8, 3 epochs of 512 synthetic images, 2 runs per arm), with
    Dynamo's eager backend for the compiled arm: minutes of inductor code generation would be no check of ours.
    (Width 8 is the least at which the seed's squeeze-excite layers have a channel: it divides by 16.)"""
    # Ours evaluates only after the last epoch, on 500 images; the seed evaluates every epoch on 1,000 (it
    # asserts whole thousands). Toy figures either way: what is checked is that every stage runs and reports.
    tiny = ["--device", "cpu", "--data", "synthetic", "--width", "8", "--epochs", "3", "--train-subset", "512",
            "--test-subset", "500", "--eval-every", "3", "--batch-size", "128", "--threads", "1"]
    have_seed = seed_main is not None and seed_main.is_file()
    return Plan(
        dry_run=True, runs=2, train_flags=tiny,
        seed_arm="seed-cpu" if have_seed else "standin",
        seed_cpu_flags=["--seed-main", str(seed_main), "--runs", "2", "--width", "8", "--epochs", "3",
                        "--train-images", "512", "--test-images", "1000", "--batch-size", "128"] if have_seed else [],
        diff_args=_py("speedrun.conformance.seed_diff", "--seed-file", str(seed_main), "--data", "synthetic",
                      "--width", "8", "--epochs", "3", "--train-images", "256", "--batch-size", "128", "--steps", "1,2",
                      "--device", "cpu", "--precision", "fp32", "--out", str(out / "seed_diff.json"))
        if have_seed else None,
        whiten_args=_py("speedrun.conformance.whiten_compare", "--data", "synthetic", "--train-images", "1000",
                        "--chunk", "250", "--orders", "2", "--device", "cpu", "--out", str(out / "whitening.json")),
        bench_widths=(8,), bench_flags=["--device", "cpu", "--precision", "fp32", "--steps", "2", "--warmup", "1",
                                        "--batch-size", "64", "--threads", "1"],
        fast_modes=("compile",), limits=dict(env=30, seed_diff=60, whitening=60), bench_reserve_s=15.0, min_arm_s=5.0,
        child_env={"SPEEDRUN_COMPILE_BACKEND": "eager", "OMP_NUM_THREADS": "1"})
