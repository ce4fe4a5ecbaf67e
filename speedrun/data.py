"""CIFAR-10 on the device: locate, verify, load once per process; and a synthetic, learnable stand-in.

Resolution order for the real data: explicit `data_dir` -> `$CIFAR10_DIR` -> a per-user cache folder, where
torchvision downloads the archive when the network allows. Every file is checked against torchvision's md5.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .whiten import METHODS, whitening_filters

__all__ = ["DataError", "Dataset", "resolve_data_dir", "verify", "load_numpy", "get_dataset", "clear_datasets",
           "MEAN", "STD", "FILES"]

MEAN = (0.4913997551666284, 0.48215855929893703, 0.4465309133731618)
STD = (0.24703225141799082, 0.24348516474564, 0.26158783926049628)
FOLDER = "cifar-10-batches-py"
# name -> (bytes, md5), as torchvision records them
FILES = {
    "batches.meta": (158, "5ff9c542aee3614f3951f8cda6e48888"),
    "data_batch_1": (31_035_704, "c99cafc152244af753f735de768cd75f"),
    "data_batch_2": (31_035_320, "d4bba439e000b95fd0a9bffe97cbabec"),
    "data_batch_3": (31_035_999, "54ebc095f3ab1f0389bbae665268c751"),
    "data_batch_4": (31_035_696, "634d18415352ddfa80567beed471001a"),
    "data_batch_5": (31_035_623, "482c414d41f54cd18b22e5b47cb7c3cb"),
    "test_batch": (31_035_526, "40351d587109b95175f43aff81a1287e"),
}
FIX = ("pass --data-dir DIR (or set $CIFAR10_DIR) to a folder holding cifar-10-batches-py, "
       "or run `python -m speedrun data --download` where the network allows")


class DataError(RuntimeError):
    """The data set is missing, truncated or corrupt; the message says where we looked and what to do."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "speedrun" / "cifar10"


def _batches_folder(root: Path) -> Path:
    """Accept either the folder that holds cifar-10-batches-py or that folder itself."""
    return root if root.name == FOLDER or (root / "data_batch_1").exists() else root / FOLDER


def resolve_data_dir(data_dir: str | None = None, *, download: bool = True) -> Path:
    """Return the cifar-10-batches-py folder, downloading into the user cache only when nothing was named."""
    named = data_dir or os.environ.get("CIFAR10_DIR")
    if named:
        folder = _batches_folder(Path(named).expanduser())
        source = "--data-dir" if data_dir else "$CIFAR10_DIR"
        if not folder.is_dir():
            raise DataError(f"CIFAR-10 not found: {source} points at {named}, which has no {FOLDER}; {FIX}")
        return folder
    cache = default_cache_dir()
    folder = cache / FOLDER
    if not folder.is_dir() and download:
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(cache), train=True, download=True)
        except Exception as exc:  # no network, no disk: say what happened and how to fix it
            raise DataError(f"CIFAR-10 not in {cache} and the download failed ({exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); {FIX}") from None
    if not folder.is_dir():
        raise DataError(f"CIFAR-10 not found in {cache} (no --data-dir, no $CIFAR10_DIR); {FIX}")
    return folder


def verify(folder: Path, *, md5: bool = True) -> None:
    """Check every file's size and (optionally) md5 against torchvision's values."""
    for name, (size, digest) in FILES.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 file missing: {path}; {FIX}")
        actual = path.stat().st_size
        if actual != size:
            raise DataError(f"CIFAR-10 file truncated or wrong: {path} has {actual} bytes, expected {size}; "
                            f"delete the folder and download again, or {FIX}")
        if md5:
            h = hashlib.md5()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            if h.hexdigest() != digest:
                raise DataError(f"CIFAR-10 file corrupt: {path} md5 {h.hexdigest()}, expected {digest}; "
                                f"delete the folder and download again, or {FIX}")


def load_numpy(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x uint8 N×3×32×32, train_y int64, test_x, test_y) from a verified folder."""
    def read(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in names:
            with open(folder / name, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    train_x, train_y = read([f"data_batch_{i}" for i in range(1, 6)])
    test_x, test_y = read(["test_batch"])
    for what, x, y, n in (("train", train_x, train_y, 50_000), ("test", test_x, test_y, 10_000)):
        if x.shape != (n, 3, 32, 32) or y.shape != (n,) or y.min() < 0 or y.max() > 9:
            raise DataError(f"CIFAR-10 {what} split in {folder} has images {x.shape} and labels {y.shape} "
                            f"in {y.min()}..{y.max()}; expected ({n}, 3, 32, 32) and labels 0..9; {FIX}")
    return train_x, train_y, test_x, test_y


def synthetic_numpy(n_train: int, n_test: int, seed: int = 1234):
    """Random but learnable images: each class is a smooth colour template; images add noise and a shift."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(10, 3, 4, 4))
    templates = coarse.repeat(8, axis=2).repeat(8, axis=3)  # 10×3×32×32 blocky templates

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, size=n)
        x = 0.6 * templates[y] + rng.normal(0, 40, size=(n, 3, 32, 32)) + 50
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    train_x, train_y = make(n_train)
    test_x, test_y = make(n_test)
    return train_x, train_y, test_x, test_y


@dataclass
class Dataset:
    """Normalised tensors on one device, in the compute dtype, channels_last."""

    train_x: torch.Tensor  # N×3×32×32, normalised, un-augmented (whitening reads this)
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str  # "cifar10 (/path)" or "synthetic"
    _memo: dict = field(default_factory=dict, repr=False)  # per-process reuse across runs (see below)

    def whitening(self, eps: float, chunk: int, method: str = "pooled", seed: int = 0) -> torch.Tensor:
        """Whitening filters of the training images, computed once per data set (and per seed, for a method
        with a random chunk order) and reused by later runs."""
        key = ("whitening", method, eps, chunk, seed if METHODS[method].random_order else None)
        if key not in self._memo:
            self._memo[key] = whitening_filters(self.train_x, eps, chunk, method, seed)
        return self._memo[key]

    def padded(self, pad: int) -> torch.Tensor:
        """Training images reflect-padded by `pad` (contiguous NCHW, as the crop gather wants), kept for reuse."""
        key = ("padded", pad)
        if key not in self._memo:
            self._memo[key] = torch.nn.functional.pad(self.train_x.contiguous(), (pad,) * 4, mode="reflect")
        return self._memo[key]


_CACHE: dict[tuple, Dataset] = {}
_CACHE_SIZE = 2  # datasets kept per process (each run after the first reuses what is already on the device)


def clear_datasets() -> None:
    """Forget every data set this process keeps (after an out-of-memory error: they hold device memory)."""
    _CACHE.clear()


def get_dataset(source: str, data_dir: str | None, train_subset: int | None, test_subset: int | None,
                device: torch.device, dtype: torch.dtype) -> Dataset:
    """Load (or reuse) the data set on `device`; loaded once per process per key."""
    folder = resolve_data_dir(data_dir) if source == "cifar10" else None
    key = (source, str(folder), train_subset, test_subset, str(device), dtype)
    if key in _CACHE:
        return _CACHE[key]
    if folder is not None:
        verify(folder)
        train_x, train_y, test_x, test_y = load_numpy(folder)
    else:
        train_x, train_y, test_x, test_y = synthetic_numpy(train_subset or 50_000, test_subset or 10_000)
    train_x, train_y = train_x[:train_subset], train_y[:train_subset]
    test_x, test_y = test_x[:test_subset], test_y[:test_subset]
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)

    def to_device(x: np.ndarray) -> torch.Tensor:
        t = (torch.from_numpy(x).float().div_(255) - mean) / std
        return t.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)

    data = Dataset(to_device(train_x), torch.from_numpy(train_y).to(device), to_device(test_x),
                   torch.from_numpy(test_y).to(device), "synthetic" if folder is None else f"cifar10 ({folder})")
    while len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = data
    return data
