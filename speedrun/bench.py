"""Training throughput of the recipe's step on synthetic data: images/s and achieved FLOP/s."""
from __future__ import annotations

import time

import torch

from .config import TrainConfig
from .data import get_dataset
from .flops import model_stats
from .record import device_name
from .train import _sync, augment_batch, build_training, draw_augmentation, resolve_device, resolve_precision, \
    storage_dtype, train_step

__all__ = ["bench"]


def bench(config: TrainConfig, steps: int = 10, warmup: int = 2) -> dict:
    """Time `steps` training steps (augmentation, forward, backward, optimiser) after `warmup` untimed ones."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    n = config.batch_size * 2
    data = get_dataset("synthetic", None, n, 256, device, storage_dtype(precision))
    torch.manual_seed(config.seed)
    _, model, optimizer, loss_fn, autocast = build_training(config, data, device, precision)
    for group in optimizer.param_groups:
        group["lr"] = group["peak_lr"]
    padded = data.padded(config.pad)
    gen = torch.Generator(device=device).manual_seed(config.seed)

    def step() -> None:
        perm, dy, dx, flip = draw_augmentation(n, config, gen)
        idx = perm[:config.batch_size]
        x = augment_batch(padded, idx, dy[idx], dx[idx], flip[idx])
        train_step(model, optimizer, loss_fn, x, data.train_y[idx], config.loss_scale, autocast)

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - t0
    flops = model_stats(config.width)["forward_flops_per_image"]
    images_per_s = steps * config.batch_size / seconds
    return dict(width=config.width, device=str(device), device_name=device_name(device), precision=precision,
                compile=config.compile, batch_size=config.batch_size, steps=steps, seconds_per_step=seconds / steps,
                images_per_s=images_per_s, train_gflops_per_s=3 * flops * images_per_s / 1e9,
                threads=torch.get_num_threads(), torch=torch.__version__)
