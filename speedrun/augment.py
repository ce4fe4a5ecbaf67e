"""The recipe's augmentation: one epoch's random plan (order, crop offsets, flips) and the batch gather."""
from __future__ import annotations

import torch

from .config import TrainConfig

__all__ = ["draw_augmentation", "augment_batch", "augment_epoch", "epoch_plan", "EPOCH_CHUNK"]

EPOCH_CHUNK = 8192  # images gathered at once by augment_epoch: bounds its temporary copy of padded images


def draw_augmentation(n: int, cfg: TrainConfig, gen: torch.Generator):
    """One epoch's randomness over the whole set: batch order, crop offsets (dy, dx) and flips per image."""
    # Reference quirk, kept by default: offsets are uniform over 0..2*pad-1 (translations -3..+2 for pad 3),
    # so the last padded row and column are never used.
    crop_range = 2 * cfg.pad if cfg.crop_quirk else 2 * cfg.pad + 1
    device = gen.device
    perm = torch.randperm(n, device=device, generator=gen)
    dy = torch.randint(0, crop_range, (n,), device=device, generator=gen)
    dx = torch.randint(0, crop_range, (n,), device=device, generator=gen)
    flip = torch.rand(n, device=device, generator=gen) < cfg.flip_p
    return perm, dy, dx, flip


def augment_batch(padded: torch.Tensor, index: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                  flip: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Crop size×size at per-image offsets (dy, dx) from reflect-padded images and mirror where `flip`,
    in one gather (no host sync)."""
    x = padded[index]  # B, C, H+2p, W+2p
    b, c, hp, wp = x.shape
    ar = torch.arange(size, device=x.device)
    rows = dy[:, None] + ar  # B, size
    cols = dx[:, None] + torch.where(flip[:, None], size - 1 - ar, ar)  # B, size
    flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, size * size).expand(b, c, size * size)
    out = x.reshape(b, c, hp * wp).gather(2, flat).view(b, c, size, size)
    return out.contiguous(memory_format=torch.channels_last)


def augment_epoch(padded: torch.Tensor, order: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
                  size: int = 32) -> torch.Tensor:
    """The epoch's crops and flips for the images in `order` (dy, dx, flip indexed by image), in that order, as
    one channels_last tensor whose rows i·B..(i+1)·B are exactly `augment_batch` of batch i (a gather is exact).
    Done chunk by chunk, so the temporary copy of padded images stays small."""
    n, c = order.shape[0], padded.shape[1]
    out = torch.empty((n, c, size, size), dtype=padded.dtype, device=padded.device,
                      memory_format=torch.channels_last)
    for start in range(0, n, EPOCH_CHUNK):
        idx = order[start:start + EPOCH_CHUNK]
        out[start:start + idx.shape[0]] = augment_batch(padded, idx, dy[idx], dx[idx], flip[idx], size)
    return out


def epoch_plan(perm: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """The epoch's batches as one 4×N integer tensor in batch order: image index, dy, dx, flip. Columns
    i·B..(i+1)·B are batch i, exactly the arguments the eager loop passes to `augment_batch`."""
    return torch.stack([perm, dy[perm], dx[perm], flip[perm].long()])
