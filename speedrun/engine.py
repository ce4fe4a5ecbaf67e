"""The fast training step: torch.compile and/or one CUDA graph per step, built once per process and reused.

A `StepProgram` owns a network, its momentum buffers and static input slots. It is built (compiled, warmed up,
captured) the first time a process trains a given (width, precision, batch shape, ...) and kept: every later run
with the same key re-initialises the weights, BN statistics and momentum buffers *in place* and reuses the
compiled graphs and the CUDA graph, so a study worker compiles each network once, never counts compilation as
training time (the record's `compile_s` holds it), and never piles up Dynamo recompiles.

One step reads its batch from static slots: the training set (reflect-padded) and labels, copied in once per run
(one copy per process, shared by its programs), and a 4×B plan (indices, crop offsets, flips) copied in before
each step; the lr factor is a device tensor. So one step costs two tiny copies and one graph replay (or three
compiled calls without the graph). The
optimiser is our foreach Nesterov SGD with a tensor lr: the same update as torch.optim.SGD, written so that no
Python float changes between steps (a float lr would recompile every step, or be baked into a captured graph).
"""
from __future__ import annotations

import copy
import functools
import os
import sys
import time
import warnings
from collections import OrderedDict
from contextlib import nullcontext

import torch
from torch import nn

from .augment import augment_batch
from .config import TrainConfig
from .model import build_net
from .runtime import Precision

__all__ = ["StepProgram", "fast", "get_program", "program_key", "clear_programs", "PROGRAM_FIELDS", "RUN_FIELDS",
           "MAX_PROGRAMS", "WARMUP_STEPS", "compile_backend", "sgd_step", "tta_logits"]

# TrainConfig fields a program is built from: runs that differ in any of them need their own program. `tta` is
# one: the compiled evaluation is specialised on it, so a run with the other value would recompile it inside
# evaluate() (and use up Dynamo's recompile limit) instead of building it with the program, in compile_s.
PROGRAM_FIELDS = ("width", "se_ratio", "bn_momentum", "bn_eps", "logit_scale", "batch_size", "pad", "lr",
                  "lr_bias_scale", "weight_decay", "momentum", "label_smoothing", "loss_scale", "compile",
                  "cuda_graph", "eval_batch_size", "tta")
# ... and the fields that only a run uses (its seed, schedule, data, EMA, evaluation): a test keeps the two
# lists covering every field, so a new field must be placed in one of them.
RUN_FIELDS = ("epochs", "seed", "device", "precision", "threads", "data", "data_dir", "train_subset",
              "test_subset", "crop_quirk", "flip_p", "whiten_eps", "whiten_chunk", "whiten_method", "warmup_frac",
              "final_lr_ratio", "ema_epochs", "ema_every", "ema_decay", "eval_every")
MAX_PROGRAMS = 8  # programs kept per process (least recently used dropped first): each holds a network on the device
WARMUP_STEPS = 3  # untimed steps that compile, pick cuDNN algorithms and settle allocations before capture
# Graphs Dynamo may keep per compiled function: two per program this process holds (the evaluation compiles once
# for the live network and once for the EMA copy, whose parameters do not require gradients), and some slack.
_RECOMPILE_LIMIT = 2 * MAX_PROGRAMS + 4

_PROGRAMS: OrderedDict = OrderedDict()
_SLOTS: dict = {}


def fast(cfg: TrainConfig) -> bool:
    """Whether a run trains with a StepProgram (compiled and/or graphed) rather than the eager step."""
    return cfg.compile or cfg.cuda_graph


def compile_backend() -> str:
    """torch.compile's backend: inductor, unless $SPEEDRUN_COMPILE_BACKEND names another (tests and CPU dry runs
    use aot_eager: Dynamo and AOTAutograd as on a GPU, minus minutes of C++ code generation)."""
    return os.environ.get("SPEEDRUN_COMPILE_BACKEND") or "inductor"


def _compile(fn):
    # fullgraph: a graph break would run part of the step eager without a word; here it is an error instead.
    # dynamic=False: one static graph per shape (each width its own), never a slower symbolic-shape graph.
    return torch.compile(fn, dynamic=False, fullgraph=True, backend=compile_backend())


def _dynamo_limits():
    """Dynamo raises instead of silently running eager once a function has too many graphs (options this
    torch does not know are left out; the check costs a config copy, so it is made once)."""
    return torch._dynamo.config.patch(**{k: v for k, v in _limit_options().items() if k in _known_options()})


def _limit_options() -> dict:
    return {"recompile_limit": _RECOMPILE_LIMIT, "fail_on_recompile_limit_hit": True}


@functools.lru_cache(maxsize=1)
def _known_options() -> frozenset:
    return frozenset(torch._dynamo.config.get_config_copy())


def sgd_step(params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[torch.Tensor], lr: torch.Tensor,
             weight_decay: float, momentum: float) -> None:
    """Nesterov SGD with coupled weight decay, as torch.optim.SGD computes it, over lists with a tensor lr:
    g = grad + wd·p; buf = m·buf + g; p -= lr·(g + m·buf). `bufs` start at zero, which gives exactly the
    first-step buf = g of torch's (None) buffers."""
    g = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, g)
    torch._foreach_add_(g, bufs, alpha=momentum)
    torch._foreach_mul_(g, lr)
    torch._foreach_sub_(params, g)


def _forward_loss(net: nn.Module, padded: torch.Tensor, labels: torch.Tensor, plan: torch.Tensor,
                  loss_scale: float, label_smoothing: float, autocast_dtype: torch.dtype | None,
                  loss_dtype: torch.dtype):
    """Augment the plan's batch, forward, per-sample losses and the scaled batch-sum loss (as train_step)."""
    index, dy, dx, flip = plan.unbind(0)
    x = augment_batch(padded, index, dy, dx, flip.bool())
    y = labels[index]
    if autocast_dtype is None:
        logits = net(x)
    else:
        with torch.autocast(device_type=x.device.type, dtype=autocast_dtype):
            logits = net(x)
    losses = nn.functional.cross_entropy(logits.to(loss_dtype), y, label_smoothing=label_smoothing, reduction="none")
    loss = losses.mul(loss_scale).sum().div(loss_scale)
    return loss, losses.detach().float().sum(), (logits.detach().argmax(dim=1) == y).sum()


def _update(groups: list, lrs: list[torch.Tensor], factor: torch.Tensor, loss_sum: torch.Tensor,
            correct: torch.Tensor, batch_loss: torch.Tensor, batch_correct: torch.Tensor) -> None:
    """Both groups' SGD steps at peak × factor, and the epoch's on-device sums."""
    with torch.no_grad():
        for (params, grads, bufs, weight_decay, momentum), peak in zip(groups, lrs):
            sgd_step(params, grads, bufs, peak * factor, weight_decay, momentum)
        loss_sum.add_(batch_loss)
        correct.add_(batch_correct)


def tta_logits(net: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
    """Logits of a batch, averaged with those of its mirror image when `tta`."""
    logits = net(x)
    return (logits + net(x.flip(-1))) / 2 if tta else logits


class StepProgram:
    """One network and everything a training step needs at fixed addresses; see the module docstring."""

    def __init__(self, cfg: TrainConfig, device: torch.device, precision: Precision, n_train: int):
        if cfg.cuda_graph and device.type != "cuda":
            raise RuntimeError(f"cuda_graph needs a CUDA device, not {device.type}; drop --cuda-graph there")
        self.cfg, self.device, self.precision, self.n_train = cfg, device, precision, n_train
        self.net = build_net(cfg, device).to(precision.storage)
        named = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad]
        self.params = [[p for n, p in named if not n.endswith("bias")], [p for n, p in named if n.endswith("bias")]]
        self.bufs = [[torch.zeros_like(p) for p in group] for group in self.params]
        # The two groups' peak lrs and decays, as train.make_optimizer sets them.
        self.peaks = [torch.tensor(cfg.lr, device=device), torch.tensor(cfg.lr * cfg.lr_bias_scale, device=device)]
        self.decays = [cfg.weight_decay, cfg.weight_decay / cfg.lr_bias_scale]
        b, p = cfg.batch_size, cfg.pad
        self.padded, self.labels = _data_slots(device, precision.storage, n_train, p)
        self.plan = torch.zeros(4, b, dtype=torch.long, device=device)
        self.factor = torch.zeros((), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        wrap = _compile if cfg.compile else (lambda fn: fn)
        self._forward_loss, self._update, self._eval = wrap(_forward_loss), wrap(_update), wrap(tta_logits)
        self.graph: torch.cuda.CUDAGraph | None = None

    # --- one step
    def _body(self) -> None:
        c = self.cfg
        loss, batch_loss, batch_correct = self._forward_loss(self.net, self.padded, self.labels, self.plan,
                                                             c.loss_scale, c.label_smoothing, self.precision.autocast,
                                                             self.precision.loss_dtype)
        loss.backward()
        groups = [(ps, [q.grad for q in ps], bs, wd, c.momentum)
                  for ps, bs, wd in zip(self.params, self.bufs, self.decays)]
        self._update(groups, self.peaks, self.factor, self.loss_sum, self.correct, batch_loss, batch_correct)

    def _run_body(self) -> None:
        for group in self.params:  # backward assigns fresh gradients (zero_grad(set_to_none=True))
            for q in group:
                q.grad = None
        with _dynamo_limits() if self.cfg.compile else nullcontext():
            self._body()

    def step(self, plan: torch.Tensor, factor: float) -> None:
        """One optimiser step on the batch `plan` (4×B: indices, dy, dx, flips) at lr = peak × factor."""
        self.plan.copy_(plan)
        self.factor.fill_(factor)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._run_body()

    def take_sums(self) -> tuple[float, int]:
        """(summed loss, correct predictions) since the last call; one host sync, at the end of an epoch."""
        loss, correct = self.loss_sum.item(), int(self.correct.item())
        self.loss_sum.zero_()
        self.correct.zero_()
        return loss, correct

    # --- a run on this program
    def start_run(self, state: dict, padded: torch.Tensor, labels: torch.Tensor) -> None:
        """Re-initialise in place: weights, BN statistics and counters from `state`, momentum buffers and sums
        to zero, and this run's data into the static slots."""
        with torch.no_grad():
            own = self.net.state_dict()
            if set(own) != set(state):
                raise RuntimeError("the initial state does not fit this program's network")
            for name, value in state.items():
                own[name].copy_(value)
            for group in self.bufs:
                torch._foreach_zero_(group)
            self.padded.copy_(padded)
            self.labels.copy_(labels)
        self.loss_sum.zero_()
        self.correct.zero_()
        self.net.train()

    def evaluate_logits(self, net: nn.Module, x: torch.Tensor, tta: bool) -> torch.Tensor:
        with _dynamo_limits() if self.cfg.compile else nullcontext():
            return self._eval(net, x, tta)

    # --- built once
    def warm_up(self) -> None:
        """Untimed steps that compile the step, let cuDNN pick its algorithms and, with cuda_graph, capture one
        step in a CUDA graph; then one compiled evaluation batch. The state they leave is overwritten by
        `start_run`."""
        self.plan.zero_()
        self.plan[0].copy_(torch.arange(self.cfg.batch_size, device=self.device) % self.n_train)
        if self.device.type == "cuda":  # warm up on a side stream, as CUDA graph capture requires ...
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            # (train() and bench() have bound the process to self.device already; a caller that has not still
            # captures on the right card: torch.cuda.graph syncs the current device)
            with torch.cuda.device(self.device), torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self._run_body()
            if self.cfg.cuda_graph:
                for group in self.params:  # backward inside the capture allocates the gradients in the graph's pool
                    for q in group:
                        q.grad = None
                graph = torch.cuda.CUDAGraph()
                # ... and capture on that same stream: the libraries' handles and workspaces for it exist already
                with _dynamo_limits() if self.cfg.compile else nullcontext(), torch.cuda.device(self.device), \
                        torch.cuda.graph(graph, stream=side):
                    self._body()
                self.graph = graph
            torch.cuda.current_stream(self.device).wait_stream(side)
        else:
            for _ in range(WARMUP_STEPS):
                self._run_body()
        if self.cfg.compile:  # the static-shape evaluation batch, for the live network and for an EMA copy
            x = torch.zeros(self.cfg.eval_batch_size, 3, 32, 32, device=self.device, dtype=self.precision.storage)
            x = x.contiguous(memory_format=torch.channels_last)
            frozen = copy.deepcopy(self.net).requires_grad_(False)  # as EMA holds it: a graph of its own
            for net in (self.net, frozen):
                net.eval()
                with torch.no_grad(), self.precision.autocast_context(self.device)():
                    self.evaluate_logits(net, x, self.cfg.tta)
            self.net.train()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _data_slots(device: torch.device, dtype: torch.dtype, n: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The static training-set slots (padded images, labels) for this shape, shared by every program of the
    process: runs are sequential and each copies its data in first, so one copy of the set serves all widths."""
    key = (str(device), dtype, n, pad)
    if key not in _SLOTS:
        _SLOTS[key] = (torch.zeros(n, 3, 32 + 2 * pad, 32 + 2 * pad, device=device, dtype=dtype),
                       torch.zeros(n, dtype=torch.long, device=device))
    return _SLOTS[key]


def program_key(cfg: TrainConfig, device: torch.device, precision: Precision, n_train: int) -> tuple:
    return (str(device), precision.name, n_train, compile_backend() if cfg.compile else None,
            *(getattr(cfg, f) for f in PROGRAM_FIELDS))


def get_program(cfg: TrainConfig, device: torch.device, precision: Precision,
                n_train: int) -> tuple[StepProgram, float]:
    """This process's program for the run, built and warmed up if it has none yet, and the seconds that took
    (0.0 when reused). If Dynamo's recompile limit is hit while building, that is said loudly on stderr, every
    compiled graph is dropped (torch._dynamo.reset) and the program is built again: never a silent eager run."""
    key = program_key(cfg, device, precision, n_train)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key], 0.0
    t0 = time.perf_counter()
    try:
        program = _build(cfg, device, precision, n_train)
    except Exception as exc:
        if not _is_limit_hit(exc):
            raise
        message = (f"speedrun: Dynamo's recompile limit was hit while compiling width {cfg.width} "
                   f"({type(exc).__name__}); resetting Dynamo and compiling again (counted in compile_s)")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        print(f"WARNING: {message}", file=sys.stderr, flush=True)
        clear_programs()
        program = _build(cfg, device, precision, n_train)
    while len(_PROGRAMS) >= MAX_PROGRAMS:
        _PROGRAMS.popitem(last=False)
    _PROGRAMS[key] = program
    return program, time.perf_counter() - t0


def _build(cfg, device, precision, n_train) -> StepProgram:
    program = StepProgram(cfg, device, precision, n_train)
    program.warm_up()
    return program


def _is_limit_hit(exc: BaseException) -> bool:
    hit = getattr(torch._dynamo.exc, "FailOnRecompileLimitHit", None)
    while exc is not None:
        if hit is not None and isinstance(exc, hit):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def clear_programs() -> None:
    """Drop every program, its data slots and every compiled graph of this process."""
    _PROGRAMS.clear()
    _SLOTS.clear()
    torch._dynamo.reset()
