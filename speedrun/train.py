"""train(config) -> run record: the v0.3.0 recipe, phase by phase."""
from __future__ import annotations

import copy
import math
import time
from datetime import datetime, timezone
from typing import Callable

import torch
from torch import nn

from .augment import augment_batch, augment_epoch, draw_augmentation, epoch_plan
from .config import TrainConfig
from .data import Dataset, get_dataset
from .ema import EMA
from .engine import fast, get_program, tta_logits
from .model import build_net
from .record import provenance, run_record
from .runtime import Precision, prepare_device, resolve_device, resolve_precision, synchronize

__all__ = ["train", "build_training", "init_state", "train_step", "draw_augmentation", "augment_batch", "evaluate",
           "make_optimizer", "divergence", "needs_warm_up"]


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


def init_state(cfg: TrainConfig, data: Dataset, precision: Precision) -> dict:
    """The network's initial state for this run: PyTorch's default init drawn from the global RNG (seeded by the
    caller) on the CPU, whitening filters from every un-augmented training image, in the run's storage dtype."""
    net = build_net(cfg, "cpu")
    net.whiten.weight.copy_(data.whitening(cfg.whiten_eps, cfg.whiten_chunk, cfg.whiten_method, cfg.seed))
    return net.to(precision.storage).state_dict()


def build_training(cfg: TrainConfig, data: Dataset, device: torch.device, precision: Precision):
    """(net, optimizer, loss_fn, autocast) for the eager step: the network with whitening filters from every
    un-augmented training image, in the run's precision."""
    net = build_net(cfg, device)
    net.whiten.weight.copy_(data.whitening(cfg.whiten_eps, cfg.whiten_chunk, cfg.whiten_method, cfg.seed))
    net = net.to(precision.storage)  # fp16 stores everything in half, with no loss scaler: the reference's choice
    optimizer = make_optimizer(net, cfg)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="none")
    return net, optimizer, loss_fn, precision.autocast_context(device)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, x: torch.Tensor,
               y: torch.Tensor, loss_scale: float, autocast,
               loss_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """One eager optimiser step; returns (logits, per-sample losses) without reading them back to the host."""
    with autocast():
        logits = model(x)
    # Per-sample loss in the precision's loss dtype (fp16 under pure fp16, as the reference; else fp32). Scale,
    # sum over the batch, unscale: the loss is a batch sum, which is why the learning rates carry a 1/512.
    losses = loss_fn(logits.to(loss_dtype), y)
    loss = losses.mul(loss_scale).sum().div(loss_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logits, losses


@torch.no_grad()
def evaluate(net: nn.Module, data: Dataset, cfg: TrainConfig, autocast, logits_fn=None) -> tuple[float, float]:
    """(accuracy, mean smoothed cross-entropy) over the test set, with flip TTA when cfg.tta. `logits_fn(net, x,
    tta)` (a compiled one, say) gets every batch at the full eval batch size: a short last batch is padded with
    zero images whose logits are dropped, so a compiled evaluation sees one static shape."""
    was_training = net.training
    net.eval()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="sum")
    correct = torch.zeros((), device=data.test_x.device)
    loss = torch.zeros((), device=data.test_x.device)
    for start in range(0, data.test_x.shape[0], cfg.eval_batch_size):
        x = data.test_x[start:start + cfg.eval_batch_size]
        y = data.test_y[start:start + cfg.eval_batch_size]
        with autocast():
            if logits_fn is None:
                logits = tta_logits(net, x, cfg.tta)
            else:
                n, short = x.shape[0], cfg.eval_batch_size - x.shape[0]
                if short:
                    x = torch.cat([x, x.new_zeros(short, *x.shape[1:])]).contiguous(memory_format=torch.channels_last)
                logits = logits_fn(net, x, cfg.tta)[:n]
        loss += loss_fn(logits.float(), y)
        correct += (logits.argmax(dim=1) == y).sum()
    net.train(was_training)
    n = data.test_x.shape[0]
    return correct.item() / n, loss.item() / n


class _EagerSteps:
    """The eager step: torch.optim.SGD with float lrs, as the seed steps (tests/test_seed_diff.py holds it to
    the seed's own code bit for bit on CPU). Like the seed, it crops and flips the epoch's images in one go at
    the epoch's start and keeps each step's outputs until the epoch's end, where the table's sums are taken:
    a step launches nothing but the network's and the optimiser's kernels (the step is launch-bound on fast GPUs)."""

    def __init__(self, cfg: TrainConfig, data: Dataset, device: torch.device, precision: Precision, steps: int):
        self.cfg, self.data, self.steps = cfg, data, steps
        self.net, self.optimizer, self.loss_fn, self.autocast = build_training(cfg, data, device, precision)
        self.loss_dtype = precision.loss_dtype
        self.padded = data.padded(cfg.pad)

    def epoch(self, perm, dy, dx, flip) -> None:
        used = perm[:self.steps * self.cfg.batch_size]  # each epoch drops the last partial batch
        self.x = augment_epoch(self.padded, used, dy, dx, flip)
        self.y = self.data.train_y[used]
        self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def step(self, i: int, factor: float) -> None:
        b = self.cfg.batch_size
        x, y = self.x[i * b:(i + 1) * b], self.y[i * b:(i + 1) * b]
        for group in self.optimizer.param_groups:
            group["lr"] = group["peak_lr"] * factor
        logits, losses = train_step(self.net, self.optimizer, self.loss_fn, x, y, self.cfg.loss_scale, self.autocast,
                                    self.loss_dtype)
        self.outputs.append((losses.detach(), logits.detach()))

    def warm_up(self, device: torch.device) -> None:
        """One untimed step, EMA update included, on a throwaway copy of the network with its own optimiser and
        augmentation generator, so that cuDNN's autotuning and CUDA's lazy kernel loading happen before the
        timer. The run's network, optimiser, generator and the global RNG states are left as they were."""
        cfg, n = self.cfg, self.data.train_x.shape[0]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            net = copy.deepcopy(self.net)
            optimizer = make_optimizer(net, cfg)
            for group in optimizer.param_groups:
                group["lr"] = group["peak_lr"]
            perm, dy, dx, flip = draw_augmentation(n, cfg, torch.Generator(device=device).manual_seed(0))
            used = perm[:cfg.batch_size]
            x = augment_epoch(self.padded, used, dy, dx, flip)
            train_step(net, optimizer, self.loss_fn, x, self.data.train_y[used], cfg.loss_scale, self.autocast,
                       self.loss_dtype)
            EMA(net).update(0.5)

    def take_sums(self) -> tuple[float, int]:
        losses = torch.cat([loss for loss, _ in self.outputs])
        logits = torch.cat([logits for _, logits in self.outputs])
        correct = (logits.argmax(dim=1) == self.y[:losses.shape[0]]).sum()
        self.outputs = []
        return losses.float().sum().item(), int(correct.item())


class _ProgramSteps:
    """The fast step (engine.StepProgram: compiled and/or one CUDA graph), this process's program for the run,
    re-initialised in place."""

    def __init__(self, cfg: TrainConfig, data: Dataset, device: torch.device, precision: Precision,
                 program, state: dict):
        self.cfg, self.program, self.net = cfg, program, program.net
        self.autocast = precision.autocast_context(device)
        program.start_run(state, data.padded(cfg.pad), data.train_y)

    def epoch(self, perm, dy, dx, flip) -> None:
        self.plan = epoch_plan(perm, dy, dx, flip)

    def step(self, i: int, factor: float) -> None:
        b = self.cfg.batch_size
        self.program.step(self.plan[:, i * b:(i + 1) * b], factor)

    def take_sums(self) -> tuple[float, int]:
        return self.program.take_sums()


def needs_warm_up(device: torch.device) -> bool:
    """Whether an eager run warms up before its timer by default: on GPUs, whose first steps pay for cuDNN's
    autotuning (cudnn.benchmark) and for loading kernels lazily (an estimated 10-30% of a width-64 run), so a
    process's first run at each width would be timed slow. On the CPU the first step costs about what the
    others do, and the warm-up would only spend CPU time."""
    return device.type in ("cuda", "mps")


def train(config: TrainConfig, *, data: Dataset | None = None,
          progress: Callable[[dict], None] | None = None, warm_up: bool | None = None) -> dict:
    """Train one run of the recipe and return its record (see results/README.md).

    `progress(row)` is called after every epoch with that epoch's row; an exception it raises aborts the run.
    `warm_up`: before the timer, one eager step on a throwaway copy of the network (its time is the record's
    `warmup_s`; the run's results are bit for bit the same without it); None: on GPUs only (`needs_warm_up`).
    The fast step needs none: building it warms it up (`compile_s`).
    Training stops at the end of the first epoch whose training (or test) loss is not finite: the record then
    has status "diverged", the history up to that epoch, and a null headline.
    """
    cfg = config
    started_at, wall0 = datetime.now(timezone.utc), time.perf_counter()
    if cfg.threads is not None:  # before provenance(), which records the thread count
        torch.set_num_threads(cfg.threads)
    origin = provenance()  # read before training: the code that runs, not what the tree holds afterwards
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    prepare_device(device)

    # --- data: loaded onto the device once per process, reused by later runs
    if data is None:
        data = get_dataset(cfg.data, cfg.data_dir, cfg.train_subset, cfg.test_subset, device, precision.storage)
    d = cfg.derived(data.train_x.shape[0])
    n_train = data.train_x.shape[0]

    # The global RNG only initialises the network, on the CPU (so init is the same on every device and path);
    # the caller's RNG state is restored afterwards. Batch order and augmentation use `gen` on the device.
    with torch.random.fork_rng(devices=[]):
        # --- the fast step is built (compiled, captured) once per process and key; its time is compile_s
        program, compile_s = get_program(cfg, device, precision, n_train) if fast(cfg) else (None, 0.0)
        torch.manual_seed(cfg.seed)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)

        # --- network, with whitening filters from every (un-augmented) training image
        if program is None:
            steps = _EagerSteps(cfg, data, device, precision, d.steps_per_epoch)
            logits_fn = None
        else:
            steps = _ProgramSteps(cfg, data, device, precision, program, init_state(cfg, data, precision))
            logits_fn = program.evaluate_logits
        net, autocast = steps.net, steps.autocast
        ema: EMA | None = None

        # --- the eager step's first-use costs, outside the timer and the run's RNG streams
        warmup_s = 0.0
        if program is None and (needs_warm_up(device) if warm_up is None else warm_up):
            t0 = time.perf_counter()
            steps.warm_up(device)
            synchronize(device)
            warmup_s = time.perf_counter() - t0

        history, train_time, step, diverged = [], 0.0, 0, None
        for epoch in range(1, cfg.epochs + 1):
            # --- one epoch: fresh permutation, crops and flips; no host sync inside the step loop
            synchronize(device)
            t0 = time.perf_counter()
            steps.epoch(*draw_augmentation(n_train, cfg, gen))
            for i in range(d.steps_per_epoch):
                steps.step(i, d.lr_factor(step))
                # The seed's EMA clock (see Derived): the first action in the tail copies the live network ...
                if d.is_ema_copy(step):
                    ema = EMA(net)
                elif d.is_ema_update(step):  # ... and every later one blends it in
                    ema.update(d.ema_update_decay)
                step += 1
            synchronize(device)
            train_time += time.perf_counter() - t0

            # --- evaluation, outside the timer
            seen = d.steps_per_epoch * cfg.batch_size
            loss_sum, correct = steps.take_sums()
            row = dict(epoch=epoch, train_loss=loss_sum / seen, train_acc=correct / seen,
                       val_loss=None, val_acc=None, ema_val_acc=None, train_time_s=train_time)
            if math.isfinite(row["train_loss"]) and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                row["val_acc"], row["val_loss"] = evaluate(net, data, cfg, autocast, logits_fn)
                if ema is not None:
                    row["ema_val_acc"], _ = evaluate(ema.net, data, cfg, autocast, logits_fn)
            diverged = divergence(row, cfg.epochs)
            history.append(row)
            if progress is not None:
                progress(row)
            if diverged:
                break

    return run_record(cfg, history=history, device=device, precision=precision.name, data=data, derived=d,
                      steps=step, train_time_s=train_time, compile_s=compile_s, warmup_s=warmup_s,
                      wall_time_s=time.perf_counter() - wall0, started_at=started_at,
                      ema_updates=ema.updates if ema is not None else 0, origin=origin, diverged=diverged)


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
