"""Synthetic run records for tests and examples (like numpy.testing): never real results.

Records follow results/README.md (schema_version 1) so the analysis is tested against the real contract;
every one is marked `host: "synthetic"` and `device_name: "synthetic (analysis.testing)"` so it can never pass
for a measurement.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .records import EXECUTION_FIELDS
from .writer import write_atomic

__all__ = ["make_record", "write_records", "grid_records", "num_params_of", "SYNTHETIC_HOST"]

SYNTHETIC_HOST = "synthetic"
_PARAMS_PER_WIDTH2 = 6_570_488 / 64**2  # num_params ≈ this × width² (6,570,488 at width 64)
_FLOPS_PER_WIDTH2 = 1.0e8 / 64**2  # forward FLOPs per image ≈ this × width² (illustrative)
_TRAIN_FLOPS_PER_IMAGE_WIDTH2 = 3.0e8 / 64**2  # training FLOPs per image seen ≈ this × width² (illustrative)


def make_record(*, width: int = 64, epochs: int = 10, seed: int = 0, ema_val_acc: float | None = 0.94,
                status: str = "ok", study: str | None = "synthetic", train_images: int = 50_000,
                seconds_per_gflop: float = 2e-7, config: dict | None = None, **overrides) -> dict:
    """A complete, realistic schema-1 record dict; `config` updates config fields, `overrides` replace
    top-level fields. `status` is "ok", "failed" or "diverged" (results null, `error` says why)."""
    config = {"width": width, "epochs": epochs, "seed": seed, "device": "auto", "precision": "auto",
              "compile": False, "threads": None, "data": "cifar10", "data_dir": None, "train_subset": None,
              "test_subset": None, "batch_size": 512, **(config or {})}
    identity = {k: v for k, v in config.items() if k not in EXECUTION_FIELDS}
    run_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    forward = round(_FLOPS_PER_WIDTH2 * width**2)
    per_epoch = round(_TRAIN_FLOPS_PER_IMAGE_WIDTH2 * width**2) * train_images
    flops = per_epoch * epochs
    ok = status == "ok"
    errors = {"failed": "RuntimeError: CUDA out of memory",
              "diverged": f"training loss became nan in epoch 1 of {epochs}; training stopped there"}
    steps = train_images // 512 * epochs
    time_s = flops / 1e9 * seconds_per_gflop if ok else None
    history = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.9, "val_loss": 0.3, "val_acc": ema_val_acc,
                "ema_val_acc": ema_val_acc if e == epochs else None,
                "train_time_s": (time_s or 0.0) * e / epochs} for e in range(1, epochs + 1)] if ok else []
    record = {
        "schema_version": 1, "run_id": run_id, "study": study, "status": status,
        "error": errors.get(status), "attempts": 1, "config": config,
        "device": "cuda", "device_name": "synthetic (analysis.testing)", "precision": "fp16",
        "ema_val_acc": ema_val_acc if ok else None, "val_acc": ema_val_acc if ok else None,
        "val_loss": 0.3 if ok else None, "train_loss": 1.0 if ok else None, "train_acc": 0.9 if ok else None,
        "train_time_s": time_s, "compile_s": 0.0 if ok else None, "warmup_s": 0.0 if ok else None,
        "wall_time_s": time_s + 5.0 if ok else None,
        "num_params": round(_PARAMS_PER_WIDTH2 * width**2), "num_trainable_params": round(_PARAMS_PER_WIDTH2 * width**2) - 2352,
        "forward_flops_per_image": forward, "train_flops": flops if ok else None,
        "flops_per_epoch": per_epoch if status != "failed" else None,
        "train_images": train_images, "test_images": 10_000, "steps": steps if ok else None,
        "ema_updates": 96 if ok else None, "data_source": "synthetic" if ok else None,
        "history": history, "host": SYNTHETIC_HOST, "threads": 2, "git_commit": None, "git_dirty": None,
        "versions": {"python": "3.11.7", "torch": "2.4.0", "torchvision": "0.19.0", "speedrun": "0.1.0",
                     "numpy": "2.0.0"},
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:01:00+00:00",
    }
    record.update(overrides)
    return record


def num_params_of(width) -> float:
    """The num_params make_record writes for `width`."""
    return round(_PARAMS_PER_WIDTH2 * width**2)


def grid_records(error, *, widths=(64, 80, 96, 112, 128), epochs=(10, 20, 40, 80), seeds=3, sd=0.0014,
                 rel_sd: float | None = None, seed: int = 0, **fields) -> list[dict]:
    """Records of a width × epochs × seeds grid whose ema_val_acc is 1 − error(num_params, epochs) plus Gaussian
    seed noise of SD `sd`, or with `rel_sd` of SD rel_sd × that error (noise proportional to the error, as
    real runs scatter); drawn from numpy's generator seeded by `seed`. `fields` go to make_record."""
    rng = np.random.default_rng(seed)
    records = []
    for w in widths:
        for e in epochs:
            err = error(num_params_of(w), e)
            scale = sd if rel_sd is None else rel_sd * err
            records += [make_record(width=w, epochs=e, seed=s, ema_val_acc=float(1.0 - err + rng.normal(0, scale)),
                                    **fields) for s in range(seeds)]
    return records


def write_records(directory: str | Path, records: list[dict]) -> list[Path]:
    """Write each record to `directory`/runs/<run_id>.json, as a study does; returns the paths."""
    runs = Path(directory) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    paths = []
    for record in records:
        path = runs / f"{record['run_id']}.json"
        write_atomic(path, json.dumps(record, indent=1))
        paths.append(path)
    return paths
