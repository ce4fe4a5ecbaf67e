"""Model size and training compute of a config: what the network reports about itself, and the one formula
that turns forward FLOPs into training FLOPs."""
from __future__ import annotations

from functools import lru_cache

import torch

from .config import TrainConfig
from .model import Net

__all__ = ["model_stats", "train_flops", "TRAIN_FLOPS_PER_FORWARD"]

# A training step costs about three forward passes: the forward itself, and a backward that computes gradients
# with respect to both activations and weights (each about one forward's worth of products).
TRAIN_FLOPS_PER_FORWARD = 3


def model_stats(config: TrainConfig) -> dict:
    """num_params, num_trainable_params and forward_flops_per_image of `config`'s network, as the network
    reports them (built on the meta device: no memory, no data)."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"model_stats takes a TrainConfig (e.g. TrainConfig(width=64)), not {type(config).__name__}")
    return dict(_stats(_network_key(config)))  # a fresh dict: a caller that edits it cannot change the cache


# Fields that set how long and in which order the network trains, never its shape: configs differing only in
# them share one entry of the cache (a grid's seeds and epochs would otherwise rebuild the net for every run).
_NOT_NETWORK = ("seed", "epochs")


def _network_key(config: TrainConfig) -> tuple:
    return tuple((k, v) for k, v in config.to_dict().items() if k not in _NOT_NETWORK)


@lru_cache(maxsize=256)
def _stats(key: tuple) -> tuple[tuple[str, int], ...]:
    with torch.device("meta"):
        net = Net(TrainConfig(**dict(key)))
    return (("num_params", net.num_params()), ("num_trainable_params", net.num_params(trainable_only=True)),
            ("forward_flops_per_image", net.forward_flops_per_image()))


def train_flops(config: TrainConfig, images: int | None = None) -> int:
    """Training compute for `images` images trained on: TRAIN_FLOPS_PER_FORWARD × forward FLOPs × images.
    Without `images`: the whole planned run (every step of every epoch, as config.derived() counts them)."""
    return _train_flops(tuple((k, v) for k, v in config.to_dict().items() if k != "seed"), images)


@lru_cache(maxsize=4096)
def _train_flops(key: tuple, images: int | None) -> int:
    # Keyed without the seed (it changes neither the net nor the step count): a grid's seeds share one entry.
    config = TrainConfig(**dict(key))
    if images is None:
        images = config.derived().total_steps * config.batch_size
    return TRAIN_FLOPS_PER_FORWARD * model_stats(config)["forward_flops_per_image"] * images
