"""Exponential moving average of the whole network state (weights, biases and BN running statistics)."""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A frozen copy of `net` taken now; `update` blends every floating-point state entry:
    ema = decay * ema + (1 - decay) * live. Integer entries (BN's num_batches_tracked) are left alone."""

    def __init__(self, net: nn.Module):
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        self.updates = 0
        pairs = zip(self.net.state_dict().values(), net.state_dict().values())
        self._pairs = [(e, l) for e, l in pairs if e.is_floating_point()]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        ema = [e for e, _ in self._pairs]
        live = [l for _, l in self._pairs]
        torch._foreach_lerp_(ema, live, 1.0 - decay)  # ema + (1 - d)(live - ema) = d·ema + (1 - d)·live
        self.updates += 1
