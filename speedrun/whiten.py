"""PCA whitening of 2×2×3 patches, computed once from the un-augmented training images.

The reference averages per-chunk eigenvectors, which is fragile (an eigenvector's sign is arbitrary per chunk).
We accumulate the patch covariance over chunks in float64 and decompose once: the same quantity, soundly.
"""
from __future__ import annotations

import torch

__all__ = ["patches", "patch_covariance", "whitening_filters"]


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


def whitening_filters(images: torch.Tensor, eps: float = 1e-2, chunk: int = 5000) -> torch.Tensor:
    """12 filters (12×3×2×2): eigenvector_k / sqrt(eigenvalue_k + eps), in descending eigenvalue order."""
    c = images.shape[1]
    cov = patch_covariance(images, chunk)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)  # descending
    filters = eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]
    return filters.reshape(-1, c, 2, 2).float()
