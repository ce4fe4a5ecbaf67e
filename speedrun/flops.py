"""Parameter counts and forward FLOPs of the network, computed on the meta device (no memory, no data)."""
from __future__ import annotations

from functools import lru_cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import TrainConfig
from .model import Net

__all__ = ["model_stats"]


@lru_cache(maxsize=64)
def model_stats(width: int) -> dict:
    """num_params, num_trainable_params and forward_flops_per_image (as FlopCounterMode counts a 32×32 image)."""
    with torch.device("meta"):
        net = Net(TrainConfig(width=width))
        x = torch.empty(1, 3, 32, 32)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(x)
    return dict(
        num_params=sum(p.numel() for p in net.parameters()),
        num_trainable_params=sum(p.numel() for p in net.parameters() if p.requires_grad),
        forward_flops_per_image=int(counter.get_total_flops()),
    )
