"""The run record (schema in results/README.md): results, model size and compute, provenance."""
from __future__ import annotations

import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import torch

from .config import Derived, TrainConfig, run_id
from .flops import model_stats

__all__ = ["SCHEMA_VERSION", "ok_record", "failed_record", "estimate_train_flops", "provenance"]

SCHEMA_VERSION = 1
RESULT_FIELDS = ("ema_val_acc", "val_acc", "val_loss", "train_loss", "train_acc", "train_time_s", "wall_time_s")


def estimate_train_flops(config: TrainConfig, train_images: int | None = None) -> int:
    """Whole-run training compute without running: 3 × forward FLOPs × images trained on."""
    return _train_flops(config, config.derived(train_images))


def _train_flops(config: TrainConfig, derived: Derived) -> int:
    """One training step costs about 3x the forward pass: forward FLOPs x 3 x every image trained on."""
    return 3 * model_stats(config.width)["forward_flops_per_image"] * derived.total_steps * config.batch_size


def ok_record(cfg: TrainConfig, *, history: list[dict], device: torch.device, precision: str, data, derived: Derived,
              train_time_s: float, wall_time_s: float, started_at: datetime, ema_updates: int,
              origin: dict) -> dict:
    last = history[-1]
    record = _base(cfg, status="ok", error=None, study=None, attempts=1, origin=origin)
    record.update(
        device=str(device), device_name=device_name(device), precision=precision,
        ema_val_acc=last["ema_val_acc"], val_acc=last["val_acc"], val_loss=last["val_loss"],
        train_loss=last["train_loss"], train_acc=last["train_acc"],
        train_time_s=train_time_s, wall_time_s=wall_time_s,
        train_flops=_train_flops(cfg, derived),
        train_images=int(data.train_x.shape[0]), test_images=int(data.test_x.shape[0]), data_source=data.source,
        steps=derived.total_steps, ema_updates=ema_updates, history=history,
        started_at=started_at.isoformat(timespec="seconds"),
    )
    return record


def failed_record(config: TrainConfig, error: str, *, study: str | None = None, attempts: int = 1) -> dict:
    """A schema-complete record for a run that did not finish: status 'failed', results null."""
    record = _base(config, status="failed", error=error.strip().splitlines()[0] if error else "unknown error",
                   study=study, attempts=attempts, origin=provenance())
    record.update({k: None for k in RESULT_FIELDS}, device=None, device_name=None, precision=None, history=[],
                  train_flops=None)
    return record


def _base(cfg: TrainConfig, *, status: str, error: str | None, study: str | None, attempts: int,
          origin: dict) -> dict:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return dict(schema_version=SCHEMA_VERSION, run_id=run_id(cfg), study=study, status=status, error=error,
                attempts=attempts, config=cfg.to_dict(), **origin, **model_stats(cfg.width), started_at=now,
                finished_at=now)


def provenance() -> dict:
    commit, dirty = _git_state()
    return dict(host=socket.gethostname(), git_commit=commit, git_dirty=dirty, versions=_versions(),
                threads=torch.get_num_threads())


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return cpu_name()


@lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
