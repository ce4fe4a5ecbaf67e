"""TrainConfig: every knob of the hlb-CIFAR10 v0.3.0 recipe, with its default, in one frozen dataclass.

Width and epochs are the two knobs a scaling study turns; everything that depends on them (stage widths,
steps, warm-up, EMA start) is derived here, once. The recipe's defaults are the seed's values (hlb-CIFAR10
v0.3.0, `main.py` at 8959293); speedrun/README.md, "The recipe", lists the facts about the seed the code relies
on, and which fields are our additions.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Callable

from common.record import EXECUTION_FIELDS

from .runtime import precision_names
from .whiten import METHODS as WHITEN_METHODS

__all__ = ["TrainConfig", "ConfigError", "Derived", "run_id", "run_id_by_seed", "EXECUTION_FIELDS", "IDENTITY_DEFAULTS",
           "DEVICES", "LR_DIV_FACTOR"]

DEVICES = ("auto", "cpu", "cuda", "mps")  # "cuda:N" is accepted too
DATA_SOURCES = ("cifar10", "synthetic")

# EXECUTION_FIELDS (common.record): fields that say *where/how* a run executes but cannot change its result;
# they stay out of run_id so the same run is recognised on another machine and results folders can be merged.

# Fields added after run records were committed, each with the value that reproduces the behaviour those records
# ran with. While a field holds that value it stays out of run_id, so every existing run keeps its id (a test
# recomputes the id of every committed record); any other value enters the identity as usual.
IDENTITY_DEFAULTS = {"whiten_method": "pooled"}

# The seed builds its schedule with OneCycleLR(div_factor=1e16): the lr at step 0 is peak / 1e16, not 0.
LR_DIV_FACTOR = 1e16


class ConfigError(ValueError):
    """A TrainConfig field holds a value outside its allowed range; the message names field and range.

    `field` names the field at fault (or the unknown key) as structure, so callers such as the study-file
    checker can point at the right line without parsing the message; None when no single field is at fault.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def __reduce__(self):  # keep `field` when the error crosses a process boundary (loky, dask)
        return type(self), (str(self), self.field)


@dataclass(frozen=True)
class TrainConfig:
    # --- the scaling knobs
    width: int = 64  # base depth w; stage widths are round(2**k * w) for k = -1, 1, 2, 3 (32/128/256/512)
    epochs: int = 10  # passes over the training set, EMA tail included
    seed: int = 0  # seeds init, batch order and augmentation; same seed + same CPU -> identical metrics
    # --- execution
    device: str = "auto"  # auto (cuda -> mps -> cpu), cpu, cuda, cuda:N, mps
    precision: str = "auto"  # auto or a name in runtime.PRECISIONS (fp32, bf16, fp16); auto: fp16 on CUDA, else fp32
    compile: bool = False  # torch.compile the training step and the evaluation (built once per process; compile_s)
    cuda_graph: bool = False  # capture each training step in one CUDA graph and replay it (CUDA only)
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    # --- data
    data: str = "cifar10"  # cifar10, or synthetic (random but learnable; for tests and benchmarks only)
    data_dir: str | None = None  # folder holding cifar-10-batches-py (else $CIFAR10_DIR, else the user cache)
    train_subset: int | None = None  # use the first N training images (None: all 50,000)
    test_subset: int | None = None  # use the first N test images (None: all 10,000)
    # --- batching and augmentation
    batch_size: int = 512  # images per step; each epoch drops the last partial batch
    pad: int = 3  # reflect padding before the random crop, pixels
    crop_quirk: bool = True  # reference quirk: crop offsets 0..2*pad-1 (translations -3..+2), not 0..2*pad
    flip_p: float = 0.5  # probability of a horizontal flip, per image per epoch
    # --- network
    se_ratio: int = 16  # squeeze-excite bottleneck divisor (hidden = max(1, channels // se_ratio))
    bn_momentum: float = 0.8  # PyTorch convention: running = (1 - m) * old + m * batch
    bn_eps: float = 1e-12
    logit_scale: float = 0.1  # logits multiplied by this after the final Linear
    whiten_eps: float = 1e-2  # filter_k = v_k / sqrt(lambda_k + eps)
    whiten_chunk: int = 5000  # images per chunk (pooled: accumulation; chunk_average: one decomposition each)
    # pooled: one covariance, decomposed once (ours); chunk_average: the seed's mean of per-chunk eigenvectors
    # over a random chunk order drawn from `seed`. Measured on CIFAR-10 (results/whitening/): the two agree on
    # 11 of 12 filters; the seed's 9th is sign-fragile and differs between its own runs, so pooled stays.
    whiten_method: str = "pooled"
    # --- optimisation
    lr: float = 1.15 * 1.35 / 512  # peak lr of non-bias weights, per summed (not averaged) batch loss
    lr_bias_scale: float = 32.0  # bias-group peak lr = lr * this
    weight_decay: float = 0.85 * 4.8e-4 * 512  # coupled (PyTorch) decay of non-bias weights
    momentum: float = 0.85  # Nesterov momentum, both groups
    label_smoothing: float = 0.2
    loss_scale: float = 1.0 / 16  # loss * s, summed over the batch, / s (a regulariser in fp16)
    warmup_frac: float = 0.2  # warm-up ends at this fraction of ALL steps (tail included)
    final_lr_ratio: float = 0.135  # lr at the end of decay and throughout the EMA tail, x peak
    # --- EMA tail
    ema_epochs: int = 2  # the last N epochs run at constant lr and feed the EMA
    ema_every: int = 2  # EMA update every N steps
    ema_decay: float = 0.986  # per-step decay; each update uses ema_decay ** ema_every
    # --- evaluation
    eval_every: int = 1  # evaluate every N epochs; the last epoch is always evaluated
    eval_batch_size: int = 1000
    tta: bool = True  # flip test-time augmentation: average the logits of the image and its mirror

    def __post_init__(self) -> None:
        _validate(self)

    def derived(self, train_images: int | None = None) -> "Derived":
        """Everything derived from the knobs (steps, schedule points, EMA start), computed in one place."""
        return Derived.of(self, train_images)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def with_seed(self, seed: int) -> "TrainConfig":
        """This config with another seed. Only the seed is checked: no other field changed, and no check relates
        the seed to another field. A grid's seeds are built this way: 100,000 full constructions took seconds."""
        _check_seed(seed)
        copy = object.__new__(TrainConfig)
        object.__setattr__(copy, "__dict__", {**self.__dict__, "seed": seed})
        return copy

    def to_dict(self) -> dict:
        # Every field is a scalar, so a shallow dict is what asdict() gives, without its deep copies: run_id calls
        # this for every run of a grid (100,000 runs: 8 s of asdict alone).
        return {f.name: getattr(self, f.name) for f in _FIELDS}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s) {unknown}; valid fields: {', '.join(field_names())}",
                              field=unknown[0])
        return cls(**values)


_FIELDS = dataclasses.fields(TrainConfig)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


@dataclass(frozen=True)
class Derived:
    """Values computed from a TrainConfig and the training-set size; the only place they are computed."""

    stage_widths: tuple[int, int, int, int]  # init, block1, block2, block3 channels
    steps_per_epoch: int
    total_steps: int  # T
    tail_steps: int  # constant-lr EMA tail at the end
    decay_end_step: int  # first step at final_lr_ratio x peak (= T - tail - 1)
    warmup_steps: float  # lr peaks at this (possibly fractional) step, as OneCycleLR computes it
    ema_copy_step: int  # the EMA copy is taken after this optimiser step (0-based): 777 at 10 epochs
    ema_every: int  # EMA update every N steps
    ema_updates: int  # EMA updates after the copy: 96 at 10 epochs
    ema_update_decay: float  # decay applied per update: ema_decay ** ema_every (0.986**2 = 0.9722)
    final_lr_ratio: float

    @staticmethod
    def of(config: TrainConfig, train_images: int | None = None) -> "Derived":
        n = train_images if train_images is not None else (config.train_subset or 50_000)
        spe = n // config.batch_size
        if spe < 1:
            raise ConfigError(
                f"batch_size={config.batch_size} exceeds the {n} training images; use train_subset >= batch_size",
                field="batch_size")
        total = spe * config.epochs
        if config.epochs > config.ema_epochs:
            tail = spe * config.ema_epochs  # the reference
        else:
            # The reference breaks here (no steps left before the tail). Ours, for 1- and 2-epoch runs only:
            # the EMA tail is the second half of the run, so short runs still warm up, decay and average.
            tail = max(1, total // 2)
        ramp = total - tail  # steps of warm-up + linear decay (the reference's OneCycleLR total_steps)
        # The seed's EMA clock: a counter incremented after every optimiser step; from the tail's first step on,
        # the EMA acts whenever the counter is a multiple of ema_every, and its first action only copies. After
        # step s (0-based) the counter is s + 1, so at 10 epochs the copy follows step 777 (counter 778).
        acts = [s for s in range(ramp, total) if (s + 1) % config.ema_every == 0]
        if not acts:
            raise ConfigError(f"the EMA tail of {tail} step(s) holds no step where the EMA acts (every "
                              f"{config.ema_every} steps); give the tail more steps (ema_epochs, epochs, images) or "
                              "use a smaller ema_every")
        # As the seed: pct_start = warmup_frac * T / ramp, and OneCycleLR peaks at float(pct_start * ramp) - 1.
        # (A one-step run has no ramp: its single step runs at the tail's lr.)
        warmup = min(float(config.warmup_frac * (total / ramp) * ramp) - 1, ramp - 1) if ramp else -1.0
        return Derived(
            stage_widths=stage_widths(config.width),
            steps_per_epoch=spe,
            total_steps=total,
            tail_steps=tail,
            decay_end_step=ramp - 1,
            warmup_steps=warmup,
            ema_copy_step=acts[0],
            ema_every=config.ema_every,
            ema_updates=len(acts) - 1,
            ema_update_decay=config.ema_decay**config.ema_every,
            final_lr_ratio=config.final_lr_ratio,
        )

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak lr used at optimiser step `step` (0-based), as the seed's OneCycleLR gives it:
        linear warm-up from 1/LR_DIV_FACTOR, linear decay to final_lr_ratio at decay_end_step, then constant
        through the EMA tail (the seed stops stepping its scheduler there)."""
        start = 1.0 / LR_DIV_FACTOR
        if step <= self.warmup_steps:
            pct = step / self.warmup_steps if self.warmup_steps > 0 else 1.0
            return (1.0 - start) * pct + start
        if step >= self.decay_end_step:
            return self.final_lr_ratio
        pct = (step - self.warmup_steps) / (self.decay_end_step - self.warmup_steps)
        return (self.final_lr_ratio - 1.0) * pct + 1.0

    def is_ema_copy(self, step: int) -> bool:
        """Whether the EMA copy of the live network is taken after optimiser step `step` (0-based)."""
        return step == self.ema_copy_step

    def is_ema_update(self, step: int) -> bool:
        """Whether the EMA is updated after optimiser step `step` (0-based)."""
        return step > self.ema_copy_step and (step + 1) % self.ema_every == 0


def stage_widths(width: int) -> tuple[int, int, int, int]:
    """round(2**k * width) for k = -1, 1, 2, 3, never below one channel."""
    return tuple(max(1, round(2.0**k * width)) for k in (-1, 1, 2, 3))  # type: ignore[return-value]


def run_id(config: TrainConfig) -> str:
    """12 hex digits naming the run: a hash of every field that can change the result."""
    return _digest(_canonical(_identity(config)))


def run_id_by_seed(config: TrainConfig) -> Callable[[int], str]:
    """seed -> run_id(config.with_seed(seed)), from one canonical text: the seed is one field of it and the text
    around it is the same for every seed (a 100,000-run grid's ids in a tenth of the time)."""
    identity = _identity(config)
    identity["seed"] = _SEED_MARK
    prefix, suffix = _canonical(identity).split(json.dumps(_SEED_MARK))

    def of(seed: int) -> str:
        _check_seed(seed)
        return _digest(f"{prefix}{seed}{suffix}")  # an int's JSON is its str()

    return of


_SEED_MARK = "\x00seed\x00"  # no field's value can hold it (all are numbers, booleans and plain names)


def _identity(config: TrainConfig) -> dict:
    return {k: v for k, v in config.to_dict().items()
            if k not in EXECUTION_FIELDS and not (k in IDENTITY_DEFAULTS and v == IDENTITY_DEFAULTS[k])}


def _canonical(identity: dict) -> str:
    return json.dumps(identity, sort_keys=True, separators=(",", ":"), default=repr)


def _digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _check_seed(seed) -> None:
    """The seed's own check, worded as _validate words it."""
    allowed = ("an integer" if not isinstance(seed, int) or isinstance(seed, bool) else
               "an integer >= 0" if seed < 0 else None)
    if allowed:
        raise ConfigError(f"TrainConfig.seed={seed!r} is invalid: expected {allowed}", field="seed")


# --- validation: one clear error naming the field and the allowed range
_POSITIVE_INTS = ("width", "epochs", "batch_size", "se_ratio", "whiten_chunk", "ema_every", "eval_every",
                  "eval_batch_size")
_NON_NEGATIVE_INTS = ("seed", "pad", "ema_epochs")
_POSITIVE_FLOATS = ("lr", "lr_bias_scale", "loss_scale", "ema_decay", "bn_eps", "logit_scale", "whiten_eps")
_NON_NEGATIVE_FLOATS = ("weight_decay", "momentum", "label_smoothing", "final_lr_ratio")
_UNIT_FLOATS = ("flip_p", "bn_momentum", "momentum", "label_smoothing", "ema_decay", "warmup_frac")


def _validate(c: TrainConfig) -> None:
    def fail(name: str, allowed: str) -> None:
        raise ConfigError(f"TrainConfig.{name}={getattr(c, name)!r} is invalid: expected {allowed}", field=name)

    for name in _POSITIVE_INTS + _NON_NEGATIVE_INTS:
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool):
            fail(name, "an integer")
        if name in _POSITIVE_INTS and v < 1:
            fail(name, "an integer >= 1")
        if v < 0:
            fail(name, "an integer >= 0")
    for name in _POSITIVE_FLOATS + _NON_NEGATIVE_FLOATS + _UNIT_FLOATS:
        v = getattr(c, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            fail(name, "a number")
        if name in _POSITIVE_FLOATS and not v > 0:
            fail(name, "a number > 0")
        if name in _NON_NEGATIVE_FLOATS and v < 0:
            fail(name, "a number >= 0")
        if name in _UNIT_FLOATS and not 0 <= v <= 1:
            fail(name, "a number in [0, 1]")
    for name in ("compile", "cuda_graph", "crop_quirk", "tta"):
        if not isinstance(getattr(c, name), bool):
            fail(name, "true or false")
    if not isinstance(c.device, str) or not (c.device in DEVICES or _is_cuda_index(c.device)):
        fail("device", f"one of {', '.join(DEVICES)} or cuda:N")
    if c.precision not in precision_names():
        fail("precision", f"one of {', '.join(precision_names())}")
    if c.data not in DATA_SOURCES:
        fail("data", f"one of {', '.join(DATA_SOURCES)}")
    if c.whiten_method not in WHITEN_METHODS:
        fail("whiten_method", f"one of {', '.join(WHITEN_METHODS)}")
    if c.data_dir is not None and not isinstance(c.data_dir, str):
        fail("data_dir", "a folder path or null")
    if c.threads is not None and (not isinstance(c.threads, int) or isinstance(c.threads, bool) or c.threads < 1):
        fail("threads", "an integer >= 1 or null")
    limits = {"train_subset": 50_000, "test_subset": 10_000}
    for name, most in limits.items():
        v = getattr(c, name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= most):
            fail(name, f"an integer in 1..{most} or null (all images)")
    if c.train_subset is not None and c.train_subset < c.batch_size:
        fail("train_subset", f"an integer >= batch_size ({c.batch_size}) so that an epoch has a step")
    if c.warmup_frac <= 0:
        fail("warmup_frac", "a number in (0, 1]")


def _is_cuda_index(device: str) -> bool:
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()
