"""The seed's own schedule and EMA clock, read off its `main()` loop with a stand-in network.

`main()` holds the seed's OneCycleLR construction and stepping rule and its EMA counter. Run with a
two-parameter stand-in network and one-image batches, it takes a second for a full 10-epoch schedule of 97
steps per epoch, and tells at which steps the lr of each group is what, and after which steps the EMA copies and
updates. Tests compare `Derived` with it for several epoch counts.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from .seed_load import load_seed

__all__ = ["SeedClock", "seed_clock"]


@dataclass(frozen=True)
class SeedClock:
    lrs: tuple[tuple[float, float], ...]  # per optimiser step: lr of the non-bias group, of the bias group
    ema_copy_step: int | None  # 0-based step after which the EMA copy is taken
    ema_update_steps: tuple[int, ...]  # 0-based steps after which it is updated


class _StandIn(nn.Module):
    """One weight and one bias (so both of the seed's optimisers have a parameter); logits from them."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(10))
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1).mean(1, keepdim=True) * self.weight + self.bias).float()


def seed_clock(seed_file: str | Path, *, epochs: int, steps_per_epoch: int = 97) -> SeedClock:
    """Run the seed's `main()` on CPU for `epochs` × `steps_per_epoch` steps of one image each."""
    data = {"train": {"images": torch.zeros(steps_per_epoch, 3, 4, 4), "targets": torch.zeros(steps_per_epoch)},
            "eval": {"images": torch.zeros(1000, 1), "targets": torch.zeros(1000, dtype=torch.long)}}
    ns = load_seed(seed_file, data=data, device="cpu", epochs=epochs, batch_size=1)
    done = [0]  # optimiser steps started
    copy_step, updates, lrs = [], [], []

    def batches(data_dict, key, batchsize):
        n = steps_per_epoch if key == "train" else 1
        for _ in range(n):
            if key == "train":
                done[0] += 1
            yield torch.ones(1, 1), torch.zeros(1, dtype=torch.long)

    class NetworkEMA(ns["NetworkEMA"]):
        def __init__(self, net, decay):
            super().__init__(net, decay)
            copy_step.append(done[0] - 1)

        def update(self, current_net):
            super().update(current_net)
            updates.append(done[0] - 1)

    ns.update(make_net=_StandIn, get_batches=batches, NetworkEMA=NetworkEMA)
    hook = register_optimizer_step_pre_hook(lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ns["main"]()
    finally:
        hook.remove()
    pairs = tuple((lrs[i], lrs[i + 1]) for i in range(0, len(lrs), 2))  # opt (non-bias) steps, then opt_bias
    return SeedClock(lrs=pairs, ema_copy_step=copy_step[0] if copy_step else None,
                     ema_update_steps=tuple(updates))
