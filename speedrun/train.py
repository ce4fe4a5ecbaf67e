"""train(config) -> run record: the v0.3.0 recipe, phase by phase."""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Callable

import torch
from torch import nn

from .config import TrainConfig
from .data import Dataset, get_dataset
from .ema import EMA
from .model import build_net
from .record import provenance, run_record
from .runtime import Precision, resolve_device, resolve_precision, synchronize

__all__ = ["train", "build_training", "train_step", "draw_augmentation", "augment_batch", "evaluate", "make_optimizer",
           "divergence"]


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


def make_optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """Two Nesterov-SGD groups: non-bias weights, and every trainable `bias` (BN shifts, SE biases) at 32× the
    lr and 1/32 the decay. Each group's `peak_lr` is scaled by the schedule every step."""
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    weights = [p for n, p in named if not n.endswith("bias")]
    biases = [p for n, p in named if n.endswith("bias")]
    groups = [
        dict(params=weights, lr=0.0, peak_lr=cfg.lr, weight_decay=cfg.weight_decay),
        dict(params=biases, lr=0.0, peak_lr=cfg.lr * cfg.lr_bias_scale,
             weight_decay=cfg.weight_decay / cfg.lr_bias_scale),
    ]
    return torch.optim.SGD(groups, lr=0.0, momentum=cfg.momentum, nesterov=True)


def build_training(cfg: TrainConfig, data: Dataset, device: torch.device, precision: Precision):
    """(net, model, optimizer, loss_fn, autocast): the network with whitening filters from every un-augmented
    training image, in the run's precision; `model` is `net`, compiled when cfg.compile."""
    net = build_net(cfg, device)
    net.whiten.weight.copy_(data.whitening(cfg.whiten_eps, cfg.whiten_chunk, cfg.whiten_method, cfg.seed))
    net = net.to(precision.storage)  # fp16 stores everything in half, with no loss scaler: the reference's choice
    model = torch.compile(net) if cfg.compile else net
    optimizer = make_optimizer(net, cfg)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="none")
    return net, model, optimizer, loss_fn, precision.autocast_context(device)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, x: torch.Tensor,
               y: torch.Tensor, loss_scale: float, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step; returns (logits, per-sample losses) without reading them back to the host."""
    with autocast():
        logits = model(x)
    # Per-sample loss in the logits' dtype under pure fp16 (as the reference), else in fp32. Scale, sum over
    # the batch, unscale: the loss is a batch sum, which is why the learning rates carry a 1/512.
    losses = loss_fn(logits if logits.dtype == torch.float16 else logits.float(), y)
    loss = losses.mul(loss_scale).sum().div(loss_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logits, losses


@torch.no_grad()
def evaluate(net: nn.Module, data: Dataset, cfg: TrainConfig, autocast) -> tuple[float, float]:
    """(accuracy, mean smoothed cross-entropy) over the test set, with flip TTA when cfg.tta."""
    was_training = net.training
    net.eval()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="sum")
    correct = torch.zeros((), device=data.test_x.device)
    loss = torch.zeros((), device=data.test_x.device)
    for start in range(0, data.test_x.shape[0], cfg.eval_batch_size):
        x = data.test_x[start:start + cfg.eval_batch_size]
        y = data.test_y[start:start + cfg.eval_batch_size]
        with autocast():
            logits = net(x)
            if cfg.tta:
                logits = (logits + net(x.flip(-1))) / 2
        loss += loss_fn(logits.float(), y)
        correct += (logits.argmax(dim=1) == y).sum()
    net.train(was_training)
    n = data.test_x.shape[0]
    return correct.item() / n, loss.item() / n


def train(config: TrainConfig, *, data: Dataset | None = None,
          progress: Callable[[dict], None] | None = None) -> dict:
    """Train one run of the recipe and return its record (see results/README.md).

    `progress(row)` is called after every epoch with that epoch's row; an exception it raises aborts the run.
    Training stops at the end of the first epoch whose training (or test) loss is not finite: the record then
    has status "diverged", the history up to that epoch, and a null headline.
    """
    cfg = config
    started_at, wall0 = datetime.now(timezone.utc), time.perf_counter()
    origin = provenance()  # read before training: the code that runs, not what the tree holds afterwards
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)

    # --- data: loaded onto the device once per process, reused by later runs
    if data is None:
        data = get_dataset(cfg.data, cfg.data_dir, cfg.train_subset, cfg.test_subset, device, precision.storage)
    d = cfg.derived(data.train_x.shape[0])

    # The global RNG only initialises the network, on the CPU (so init is the same on every device); the
    # caller's RNG state is restored afterwards. Batch order and augmentation use `gen` on the device.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)

        # --- network, with whitening filters from every (un-augmented) training image
        net, model, optimizer, loss_fn, autocast = build_training(cfg, data, device, precision)
        padded = data.padded(cfg.pad)
        ema: EMA | None = None

        history, train_time, step, diverged = [], 0.0, 0, None
        n_train = data.train_x.shape[0]
        for epoch in range(1, cfg.epochs + 1):
            # --- one epoch: fresh permutation, crops and flips; no host sync inside the step loop
            synchronize(device)
            t0 = time.perf_counter()
            perm, dy, dx, flip = draw_augmentation(n_train, cfg, gen)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device)
            for i in range(d.steps_per_epoch):
                idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                x = augment_batch(padded, idx, dy[idx], dx[idx], flip[idx])
                y = data.train_y[idx]
                factor = d.lr_factor(step)
                for group in optimizer.param_groups:
                    group["lr"] = group["peak_lr"] * factor
                logits, losses = train_step(model, optimizer, loss_fn, x, y, cfg.loss_scale, autocast)
                # The seed's EMA clock (see Derived): the first action in the tail copies the live network ...
                if d.is_ema_copy(step):
                    ema = EMA(net)
                elif d.is_ema_update(step):  # ... and every later one blends it in
                    ema.update(d.ema_update_decay)
                loss_sum += losses.detach().float().sum()
                correct += (logits.detach().argmax(dim=1) == y).sum()
                step += 1
            synchronize(device)
            train_time += time.perf_counter() - t0

            # --- evaluation, outside the timer
            seen = d.steps_per_epoch * cfg.batch_size
            row = dict(epoch=epoch, train_loss=loss_sum.item() / seen, train_acc=correct.item() / seen,
                       val_loss=None, val_acc=None, ema_val_acc=None, train_time_s=train_time)
            if math.isfinite(row["train_loss"]) and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                row["val_acc"], row["val_loss"] = evaluate(model, data, cfg, autocast)
                if ema is not None:
                    row["ema_val_acc"], _ = evaluate(ema.net, data, cfg, autocast)
            diverged = divergence(row, cfg.epochs)
            history.append(row)
            if progress is not None:
                progress(row)
            if diverged:
                break

    return run_record(cfg, history=history, device=device, precision=precision.name, data=data, derived=d,
                      steps=step, train_time_s=train_time, wall_time_s=time.perf_counter() - wall0,
                      started_at=started_at, ema_updates=ema.updates if ema is not None else 0, origin=origin,
                      diverged=diverged)


def divergence(row: dict, epochs: int) -> str | None:
    """Why the run must stop after this epoch's row, or None. NaN or infinite weights never recover, so the
    rest of the run would cost time for nothing. Checked once per epoch, on the sums the table needs anyway,
    so the step loop stays free of host syncs. The test loss counts too: with one step per epoch the
    training loss can still be finite while the network already answers NaN."""
    for key, what in (("train_loss", "training loss"), ("val_loss", "test loss")):
        value = row.get(key)
        if value is not None and not math.isfinite(value):
            return f"{what} became {value} in epoch {row['epoch']} of {epochs}; training stopped there"
    return None
