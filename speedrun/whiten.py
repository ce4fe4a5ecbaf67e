"""PCA whitening of 2×2×3 patches, computed once from the un-augmented training images.

Two algorithms, one table (`METHODS`), chosen by `TrainConfig.whiten_method`:
- "pooled" (ours): accumulate one patch covariance over all chunks in float64 and decompose it once.
- "chunk_average" (the seed's, hlb-CIFAR10 v0.3.0 `init_whitening_conv`): permute the images, decompose each
  chunk's float32 covariance on its own, then average the eigenvalues and the eigenvectors over the chunks.
  Averaging eigenvectors is sign-fragile: eigh fixes each vector only up to sign, so a chunk whose vector
  comes out negated cancels part of the mean. `python -m speedrun.conformance.whiten_compare` measures both on
  real data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["patches", "patch_covariance", "whitening_filters", "pooled_eigen", "pooled_filters",
           "chunk_average_filters", "chunk_eigen", "chunk_eigens", "filters_from", "Method", "METHODS"]


def patches(images: torch.Tensor, size: int = 2) -> torch.Tensor:
    """Every size×size patch at stride 1 as a row of C·size·size values in conv-weight order (C, kh, kw)."""
    n, c, h, w = images.shape
    p = images.unfold(2, size, 1).unfold(3, size, 1)  # N, C, H', W', kh, kw
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * size * size)


def patch_covariance(images: torch.Tensor, chunk: int = 5000, size: int = 2) -> torch.Tensor:
    """Mean-centred covariance (n - 1 denominator) of all patches, accumulated chunk by chunk in float64."""
    dim = images.shape[1] * size * size
    total = torch.zeros(dim, dtype=torch.float64, device=images.device)
    outer = torch.zeros(dim, dim, dtype=torch.float64, device=images.device)
    count = 0
    for start in range(0, images.shape[0], chunk):
        p = patches(images[start:start + chunk].float(), size).double()
        total += p.sum(dim=0)
        outer += p.T @ p
        count += p.shape[0]
    mean = total / count
    return (outer - count * torch.outer(mean, mean)) / (count - 1)


def filters_from(eigenvalues: torch.Tensor, vectors: torch.Tensor, eps: float, channels: int) -> torch.Tensor:
    """Filter k = vector_k / sqrt(eigenvalue_k + eps), rows in descending eigenvalue order, as 12×C×2×2."""
    return (vectors / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, channels, 2, 2).float()


def pooled_eigen(images: torch.Tensor, chunk: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues, eigenvectors as rows) of the pooled float64 patch covariance, in descending order."""
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, chunk))
    return eigenvalues.flip(0), eigenvectors.flip(1).T


def pooled_filters(images: torch.Tensor, eps: float = 1e-2, chunk: int = 5000,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Ours: one covariance over every patch, decomposed once (`generator` unused: the order cannot matter)."""
    return filters_from(*pooled_eigen(images, chunk), eps, images.shape[1])


def chunk_eigen(part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One chunk as the seed decomposes it: float32 patches, torch.cov, eigh on the upper triangle; returns
    (eigenvalues, eigenvectors as rows), both in descending eigenvalue order."""
    # Patches in the seed's row order (its transpose(1, 3) walks columns before rows), so the float32
    # covariance rounds exactly as the seed's: filter 9 sits in a near-degenerate pair, which turns rounding
    # differences into 0.1%-level filter differences.
    c = part.shape[1]
    rows = part.float().unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, c * 4)
    cov = torch.cov(rows.T)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov, UPLO="U")
    return eigenvalues.flip(0), eigenvectors.T.flip(0)


def chunk_eigens(images: torch.Tensor, chunk: int = 5000,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every chunk's (eigenvalues, eigenvector rows) as the seed computes them, stacked: K×12 and K×12×12.
    Chunks of `chunk` images are taken in a random order drawn from `generator` (the given order when None)."""
    n = images.shape[0]
    if generator is None:
        order = torch.arange(n, device=images.device)
    else:  # drawn where the generator lives, used where the images live
        order = torch.randperm(n, generator=generator, device=generator.device).to(images.device)
    pairs = [chunk_eigen(images[order[start:start + chunk]]) for start in range(0, n, chunk)]
    return torch.stack([lam for lam, _ in pairs]), torch.stack([vec for _, vec in pairs])


def chunk_average_filters(images: torch.Tensor, eps: float = 1e-2, chunk: int = 5000,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """The seed's: eigenvalues and eigenvector rows of each chunk (`chunk_eigens`) averaged over the chunks;
    a short last chunk weighs as much as a full one, as in the seed's `split`."""
    values, vectors = chunk_eigens(images, chunk, generator)
    return filters_from(values.mean(0), vectors.mean(0), eps, images.shape[1])


@dataclass(frozen=True)
class Method:
    """One whitening algorithm: its filter function and whether its result depends on a random chunk order
    (and so on the run's seed)."""

    filters: Callable[..., torch.Tensor]  # (images, eps, chunk, generator) -> 12×C×2×2 float32 filters
    random_order: bool


# The config's `whiten_method` names one entry.
METHODS: dict[str, Method] = {
    "pooled": Method(pooled_filters, random_order=False),
    "chunk_average": Method(chunk_average_filters, random_order=True),
}


def whitening_filters(images: torch.Tensor, eps: float = 1e-2, chunk: int = 5000, method: str = "pooled",
                      seed: int = 0) -> torch.Tensor:
    """12 filters (12×3×2×2): eigenvector_k / sqrt(eigenvalue_k + eps), in descending eigenvalue order, by
    `method`; a method with a random chunk order draws it from a generator seeded with `seed` on the images'
    device (its own generator, so the run's batch order does not depend on the whitening method)."""
    if method not in METHODS:
        raise ValueError(f"unknown whitening method {method!r}; choose one of {', '.join(METHODS)}")
    entry = METHODS[method]
    generator = torch.Generator(device=images.device).manual_seed(seed) if entry.random_order else None
    return entry.filters(images, eps, chunk, generator)
