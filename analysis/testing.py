"""Synthetic run records for tests and examples (like numpy.testing): never real results.

Records follow results/README.md (schema_version 1) so the analysis is tested against the real contract;
every one is marked `host: "synthetic"` and `device_name: "synthetic (analysis.testing)"` so it can never pass
for a measurement.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["make_record", "write_records", "SYNTHETIC_HOST"]

SYNTHETIC_HOST = "synthetic"
_PARAMS_PER_WIDTH2 = 6_570_488 / 64**2  # num_params ≈ this × width² (6,570,488 at width 64)
_FLOPS_PER_WIDTH2 = 1.0e8 / 64**2  # forward FLOPs per image ≈ this × width² (illustrative)


def make_record(*, width: int = 64, epochs: int = 10, seed: int = 0, ema_val_acc: float | None = 0.94,
                status: str = "ok", study: str | None = "synthetic", train_images: int = 50_000,
                seconds_per_gflop: float = 2e-7, config: dict | None = None, **overrides) -> dict:
    """A complete, realistic schema-1 record dict; `config` updates config fields, `overrides` replace
    top-level fields."""
    config = {"width": width, "epochs": epochs, "seed": seed, "device": "auto", "precision": "auto",
              "compile": False, "threads": None, "data": "cifar10", "data_dir": None, "train_subset": None,
              "test_subset": None, "batch_size": 512, **(config or {})}
    run_id = hashlib.sha256(json.dumps({k: v for k, v in config.items() if k not in ("device", "data_dir",
                            "compile", "threads")}, sort_keys=True).encode()).hexdigest()[:12]
    forward = round(_FLOPS_PER_WIDTH2 * width**2)
    flops = 3 * forward * train_images * epochs
    ok = status == "ok"
    steps = train_images // 512 * epochs
    time_s = flops / 1e9 * seconds_per_gflop if ok else None
    history = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.9, "val_loss": 0.3, "val_acc": ema_val_acc,
                "ema_val_acc": ema_val_acc if e == epochs else None,
                "train_time_s": (time_s or 0.0) * e / epochs} for e in range(1, epochs + 1)] if ok else []
    record = {
        "schema_version": 1, "run_id": run_id, "study": study, "status": status,
        "error": None if ok else "RuntimeError: CUDA out of memory", "attempts": 1, "config": config,
        "device": "cuda", "device_name": "synthetic (analysis.testing)", "precision": "fp16",
        "ema_val_acc": ema_val_acc if ok else None, "val_acc": ema_val_acc if ok else None,
        "val_loss": 0.3 if ok else None, "train_loss": 1.0 if ok else None, "train_acc": 0.9 if ok else None,
        "train_time_s": time_s, "wall_time_s": time_s + 5.0 if ok else None,
        "num_params": round(_PARAMS_PER_WIDTH2 * width**2), "num_trainable_params": round(_PARAMS_PER_WIDTH2 * width**2) - 2352,
        "forward_flops_per_image": forward, "train_flops": flops if ok else None,
        "train_images": train_images, "test_images": 10_000, "steps": steps if ok else None,
        "ema_updates": 97 if ok else None, "data_source": "synthetic" if ok else None,
        "history": history, "host": SYNTHETIC_HOST, "threads": 2, "git_commit": None, "git_dirty": None,
        "versions": {"python": "3.11.7", "torch": "2.4.0", "torchvision": "0.19.0", "speedrun": "0.1.0",
                     "numpy": "2.0.0"},
        "started_at": "2025-01-01T00:00:00+00:00", "finished_at": "2025-01-01T00:01:00+00:00",
    }
    record.update(overrides)
    return record


def write_records(directory: str | Path, records: list[dict]) -> list[Path]:
    """Write each record to `directory`/runs/<run_id>.json, as a study does; returns the paths."""
    runs = Path(directory) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    paths = []
    for record in records:
        path = runs / f"{record['run_id']}.json"
        path.write_text(json.dumps(record, indent=1), encoding="utf-8")
        paths.append(path)
    return paths
