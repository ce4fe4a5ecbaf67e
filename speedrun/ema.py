"""Exponential moving average of the whole network state (weights, biases and BN running statistics)."""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A frozen copy of `net` taken now; `update` blends every floating-point state entry:
    ema = decay * ema + (1 - decay) * live. Integer entries (BN's num_batches_tracked) keep their value from
    the copy, as in the seed (it blends only fp16/fp32 entries; BN with a fixed momentum never reads them).

    The arithmetic is the seed's, rounding for rounding: ema.mul_(d).add_(live * (1 - d)). A lerp rounds
    differently in fp16. On CUDA the same three operations run as foreach kernels over all entries at once
    (a handful of launches instead of three per entry): CUDA computes a tensor-times-scalar in fp32 and rounds
    once either way, which `seed_diff --device cuda --precision fp16` checks against the seed's own update
    (check `ema_arithmetic`). On the CPU, torch._foreach_mul_ rounds d itself to fp16 first, so the CPU keeps
    the seed's entry-by-entry loop."""

    def __init__(self, net: nn.Module, foreach: bool | None = None):
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        self.updates = 0
        pairs = zip(self.net.state_dict().values(), net.state_dict().values())
        self._pairs = [(e, l) for e, l in pairs if e.is_floating_point()]
        self._emas = [e for e, _ in self._pairs]
        self._lives = [l for _, l in self._pairs]
        on_cuda = bool(self._pairs) and self._pairs[0][0].device.type == "cuda"
        self.foreach = on_cuda if foreach is None else foreach

    @torch.no_grad()
    def update(self, decay: float) -> None:
        if self.foreach:
            torch._foreach_mul_(self._emas, decay)
            torch._foreach_add_(self._emas, torch._foreach_mul(self._lives, 1.0 - decay))
        else:
            for ema, live in self._pairs:
                ema.mul_(decay).add_(live.mul(1.0 - decay))
        self.updates += 1
