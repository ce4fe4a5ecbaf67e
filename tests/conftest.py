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


# Packages a bare GPU image may lack (the trainer and its GPU tests need only torch, numpy and pytest). A test
# module that imports one is skipped there, naming it, instead of stopping the session's collection, so that
# `pytest -m gpu` runs on that image. Under CI a missing package stays an error.
OPTIONAL_PACKAGES = frozenset({"threadpoolctl", "pandas", "scipy", "matplotlib", "dask", "distributed", "joblib",
                               "tqdm", "torchvision", "psutil", "tomli"})


class _ModuleNeedingPackages(pytest.Module):
    def collect(self):
        try:
            return super().collect()
        except self.CollectError as error:
            missing = error.__cause__
            name = getattr(missing, "name", None) or ""
            if (isinstance(missing, ModuleNotFoundError) and name.split(".")[0] in OPTIONAL_PACKAGES
                    and not os.environ.get("CI")):
                pytest.skip(f"needs {name}, which is not installed here (pip install {name.split('.')[0]})",
                            allow_module_level=True)
            raise


def pytest_pycollect_makemodule(module_path, parent):
    return _ModuleNeedingPackages.from_parent(parent, path=module_path)


def tiny_config(**overrides):
    """A run that trains in seconds on 2 CPU cores on synthetic data."""
    from speedrun import TrainConfig

    values = dict(width=4, epochs=2, device="cpu", data="synthetic", train_subset=512, test_subset=256,
                  batch_size=128, seed=0)
    values.update(overrides)
    return TrainConfig(**values)
