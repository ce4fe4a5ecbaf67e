"""Exponential moving average of the whole network state (weights, biases and BN running statistics)."""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A frozen copy of `net` taken now; `update` blends every floating-point state entry:
    ema = decay * ema + (1 - decay) * live. Integer entries (BN's num_batches_tracked) keep their value from
    the copy, as in the seed (it blends only fp16/fp32 entries; BN with a fixed momentum never reads them)."""

    def __init__(self, net: nn.Module):
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        self.updates = 0
        pairs = zip(self.net.state_dict().values(), net.state_dict().values())
        self._pairs = [(e, l) for e, l in pairs if e.is_floating_point()]

    @torch.no_grad()
    def update(self, decay: float) -> None:
        # The seed's arithmetic, rounding for rounding: ema.mul_(d).add_(live * (1 - d)), entry by entry. A lerp
        # rounds differently in fp16, and so does torch._foreach_mul_ on CPU, which rounds d itself to fp16.
        for ema, live in self._pairs:
            ema.mul_(decay).add_(live.mul(1.0 - decay))
        self.updates += 1
