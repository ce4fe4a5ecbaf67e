"""Shared fixtures. Real CIFAR-10 comes from $CIFAR10_DIR (CI points it at ../shared/data/cifar10)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cifar_dir() -> str:
    """The real data set's folder. Under CI its absence is a failure, not a skip."""
    path = os.environ.get("CIFAR10_DIR")
    if path and Path(path).is_dir():
        return path
    if os.environ.get("CI"):
        pytest.fail("CIFAR10_DIR is not set to the CIFAR-10 folder; .ci/run must export it")
    pytest.skip("real CIFAR-10 not available: set CIFAR10_DIR to run this test")


def tiny_config(**overrides):
    """A run that trains in seconds on 2 CPU cores on synthetic data."""
    from speedrun import TrainConfig

    values = dict(width=4, epochs=2, device="cpu", data="synthetic", train_subset=512, test_subset=256,
                  batch_size=128, seed=0)
    values.update(overrides)
    return TrainConfig(**values)
