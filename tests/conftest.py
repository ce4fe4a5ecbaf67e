"""Shared fixtures. Real CIFAR-10 comes from $CIFAR10_DIR (CI points it at ../shared/data/cifar10)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cifar_dir() -> str:
    """The real data set's folder. Under CI its absence is a failure, not a skip."""
    from speedrun.data import DataError, resolve_data_dir

    try:  # $CIFAR10_DIR, else the user cache (downloading there where the network allows)
        return str(resolve_data_dir(None))
    except DataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"real CIFAR-10 is required under CI: {exc}")
        pytest.skip(f"real CIFAR-10 not available: {exc}")


def tiny_config(**overrides):
    """A run that trains in seconds on 2 CPU cores on synthetic data."""
    from speedrun import TrainConfig

    values = dict(width=4, epochs=2, device="cpu", data="synthetic", train_subset=512, test_subset=256,
                  batch_size=128, seed=0)
    values.update(overrides)
    return TrainConfig(**values)
