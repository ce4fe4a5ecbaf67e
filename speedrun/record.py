"""The run record (schema in results/README.md): results, model size and compute, provenance."""
from __future__ import annotations

import socket
import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import torch

from .config import Derived, TrainConfig, run_id
from .flops import model_stats, train_flops
from .runtime import device_name
from common.jsonfile import strict_json
from common.record import RESULT_FIELDS, RUN_FIELDS, SCHEMA_VERSION, STATUSES

__all__ = ["SCHEMA_VERSION", "STATUSES", "run_record", "failed_record", "provenance"]


def run_record(cfg: TrainConfig, *, history: list[dict], device: torch.device, precision: str, data,
               derived: Derived, steps: int, train_time_s: float, compile_s: float, wall_time_s: float,
               started_at: datetime, ema_updates: int, origin: dict, diverged: str | None = None,
               warmup_s: float = 0.0) -> dict:
    """The record of a run that trained: status ok, or diverged (with `diverged` as its error) when training
    stopped early. Results come from the last epoch's row; a diverged run has none (null: its numbers are not
    results), only its history. Non-finite numbers become null, so the record is strict JSON."""
    status, error = ("diverged", diverged) if diverged else ("ok", None)
    last = history[-1] if status == "ok" else {}
    record = _base(cfg, status=status, error=error, study=None, attempts=1, origin=origin)
    images_per_epoch = derived.steps_per_epoch * cfg.batch_size
    record.update(
        device=str(device), device_name=device_name(device), precision=precision,
        ema_val_acc=last.get("ema_val_acc"), val_acc=last.get("val_acc"), val_loss=last.get("val_loss"),
        train_loss=last.get("train_loss"), train_acc=last.get("train_acc"),
        train_time_s=train_time_s, compile_s=compile_s, warmup_s=warmup_s, wall_time_s=wall_time_s,
        train_flops=train_flops(cfg, steps * cfg.batch_size),  # what was trained, however far it got
        flops_per_epoch=train_flops(cfg, images_per_epoch),
        train_images=int(data.train_x.shape[0]), test_images=int(data.test_x.shape[0]), data_source=data.source,
        steps=steps, ema_updates=ema_updates, history=history,
        started_at=started_at.isoformat(timespec="seconds"),
    )
    return strict_json(record)


def failed_record(config: TrainConfig, error: str, *, study: str | None = None, attempts: int = 1) -> dict:
    """A schema-complete record for a run that did not finish: status 'failed', results null."""
    record = _base(config, status="failed", error=error.strip().splitlines()[0] if error else "unknown error",
                   study=study, attempts=attempts, origin=provenance())
    record.update({k: None for k in RESULT_FIELDS + RUN_FIELDS}, history=[])
    return strict_json(record)


def _base(cfg: TrainConfig, *, status: str, error: str | None, study: str | None, attempts: int,
          origin: dict) -> dict:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return dict(schema_version=SCHEMA_VERSION, run_id=run_id(cfg), study=study, status=status, error=error,
                attempts=attempts, config=cfg.to_dict(), **origin, **model_stats(cfg), started_at=now,
                finished_at=now)


def provenance() -> dict:
    commit, dirty = _git_state()
    return dict(host=socket.gethostname(), git_commit=commit, git_dirty=dirty, versions=_versions(),
                threads=torch.get_num_threads())


@lru_cache(maxsize=1)
def _versions() -> dict:
    import numpy

    try:
        import torchvision

        tv = torchvision.__version__
    except Exception:  # torchvision is only needed for downloading
        tv = None
    from . import __version__

    return dict(python=sys.version.split()[0], torch=torch.__version__, torchvision=tv, numpy=numpy.__version__,
                speedrun=__version__)


def _git_state() -> tuple[str | None, bool | None]:
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        commit = head.stdout.strip()
        if head.returncode != 0 or not commit:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=10).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
