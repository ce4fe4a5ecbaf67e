"""python -m speedrun.conformance.seed_diff: our trainer against the seed's own code (hlb-CIFAR10 main.py), step
for step.

Both sides start from the same weights (ours, copied into the seed's network, the whitening filters with them)
and see the same batches (our augmentation; the seed's `get_batches` is replaced by a replay of them, and its
end-of-epoch evaluation, which changes no state, gets 100 test images to keep it short). Then each runs its own
loop — ours `speedrun.train.train`, the seed its `main()` — and we compare parameters, BN buffers and the EMA
after the requested steps, the lr of both groups at every step, and when the EMA copy is taken and how often
it is updated. See `seed_load` for how the seed is loaded without running it.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import sys
from dataclasses import asdict, dataclass, field
from unittest import mock

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from ..config import TrainConfig
from ..data import get_dataset
from ..runtime import PRECISIONS, resolve_device, resolve_precision
from .seed_load import SeedError, load_seed, seed_name

# The module, not the function `speedrun.train` that the package exports under the same name: its loop's
# collaborators (train_step, draw_augmentation, EMA) are patched to record what happens.
train_module = importlib.import_module("..train", __package__)

__all__ = ["DiffSetup", "run_diff", "report_lines", "main"]

EPS = {"fp32": torch.finfo(torch.float32).eps, "fp16": torch.finfo(torch.float16).eps}
ROUNDING = 64  # "agree to float rounding" after one step: every entry within 64 ulps (relative to its tensor)


@dataclass(frozen=True)
class DiffSetup:
    width: int = 8
    epochs: int = 3  # the seed needs 3 or more (its schedule breaks below)
    train_images: int = 34 * 512  # 34 steps per epoch: 102 steps, the EMA copied after step 35 (0-based)
    batch_size: int = 512
    steps: tuple[int, ...] = (1, 10, 100)  # compare after these many optimiser steps
    device: str = "cpu"
    precision: str = "fp32"  # fp32, or fp16 (CUDA, as the seed runs)
    seed: int = 0
    data: str = "cifar10"
    data_dir: str | None = None

    def config(self) -> TrainConfig:
        return TrainConfig(width=self.width, epochs=self.epochs, seed=self.seed, device=self.device,
                           precision=self.precision, data=self.data, data_dir=self.data_dir,
                           train_subset=self.train_images, test_subset=1000, batch_size=self.batch_size,
                           eval_every=self.epochs)  # the seed asserts whole 1000s of test images; ours
        # evaluates only after the last epoch (evaluation changes no state)


class _Enough(Exception):
    """Raised inside a training loop once the last requested step has been captured."""


@dataclass
class _Side:
    """What one implementation did: states after chosen steps, lrs per step, EMA timing."""

    wanted: frozenset
    steps: int = 0  # optimiser steps finished
    states: dict = field(default_factory=dict)  # step -> {"net": {name: tensor}, "ema": {...} or None}
    lrs: list = field(default_factory=list)  # per step: [lr of the non-bias group, lr of the bias group]
    ema_copy_step: int | None = None
    ema_updates: int = 0
    ema_net: torch.nn.Module | None = None
    net: torch.nn.Module | None = None  # the network this side trains (the seed's, once built)

    def snapshot(self, net: torch.nn.Module, reverse: dict | None = None) -> None:
        """State after `self.steps` steps under OUR names (`reverse` maps the seed's names to ours)."""
        def grab(module):
            sd = module.state_dict()
            return {(reverse[k] if reverse else k): v.detach().clone() for k, v in sd.items()}
        self.states[self.steps] = dict(net=grab(net), ema=grab(self.ema_net) if self.ema_net is not None else None)


def _run_ours(setup: DiffSetup, data, cfg: TrainConfig) -> tuple[_Side, list]:
    side, batches, last = _Side(frozenset(setup.steps) | {0}), [], max(setup.steps)
    real_step, real_draw, real_ema = train_module.train_step, train_module.draw_augmentation, train_module.EMA
    net_box: list = []

    def train_step(model, optimizer, *args, **kwargs):
        if not net_box:
            net_box.append(model)
        if side.steps in side.wanted:
            side.snapshot(model)
        if side.steps == last:
            raise _Enough
        side.lrs.append([g["lr"] for g in optimizer.param_groups])
        out = real_step(model, optimizer, *args, **kwargs)
        side.steps += 1
        return out

    def draw_augmentation(n, config, gen):  # the epoch's plan, recorded batch by batch
        perm, dy, dx, flip = real_draw(n, config, gen)
        b = config.batch_size
        for i in range(n // b):
            index = perm[i * b:(i + 1) * b]
            batches.append((index.clone(), dy[index].clone(), dx[index].clone(), flip[index].clone()))
        return perm, dy, dx, flip

    class EMA(real_ema):
        def __init__(self, net):
            super().__init__(net)
            side.ema_copy_step, side.ema_net = side.steps - 1, self.net

        def update(self, decay):
            super().update(decay)
            side.ema_updates += 1

    def progress(row):  # the state after the very last step, when that step is wanted
        if row["epoch"] == cfg.epochs and side.steps in side.wanted:
            side.snapshot(net_box[0])

    with mock.patch.object(train_module, "train_step", train_step), \
            mock.patch.object(train_module, "draw_augmentation", draw_augmentation), \
            mock.patch.object(train_module, "EMA", EMA), contextlib.suppress(_Enough):
        train_module.train(cfg, data=data, progress=progress)
    side.net = net_box[0]
    return side, batches


def _run_seed(setup: DiffSetup, data, cfg: TrainConfig, ours: _Side, batches: list, seed_file: str,
              dtype: torch.dtype) -> tuple[_Side, type]:
    side, last = _Side(ours.wanted), max(setup.steps)
    padded = data.padded(cfg.pad)
    seed_data = {"train": {"images": data.train_x, "targets": data.train_y},
                 "eval": {"images": data.test_x, "targets": data.test_y}}
    ns = load_seed(seed_file, data=seed_data, device=data.train_x.device, dtype=dtype, width=setup.width,
                   epochs=setup.epochs, batch_size=setup.batch_size)
    reverse: dict = {}
    make_net = ns["make_net"]
    initial = ours.states[0]["net"]

    def freeze_only(layer, *args, **kwargs):  # the filters arrive with the rest of our initial state
        layer.weight.requires_grad = False

    def make_net_from_ours():
        net = make_net()
        sd = net.state_dict()
        with torch.no_grad():
            for name, value in initial.items():
                sd[seed_name(name)].copy_(value)
                reverse[seed_name(name)] = name
        missing = set(sd) - set(reverse)
        if missing:
            raise SeedError(f"seed state entries without a counterpart in ours: {sorted(missing)}")
        side.net = net
        return net

    def replay(data_dict, key, batchsize):
        if key != "train":  # the seed's end-of-epoch evaluation: 100 test images, its output is not compared
            yield data_dict[key]["images"][:100], data_dict[key]["targets"][:100]
            return
        for _ in range(len(data_dict[key]["images"]) // batchsize):
            if side.steps in side.wanted:
                side.snapshot(side.net, reverse=reverse)
            if side.steps == last:
                raise _Enough
            index, dy, dx, flip = batches[side.steps]
            side.steps += 1
            yield train_module.augment_batch(padded, index, dy, dx, flip), data.train_y[index]
        if side.steps == cfg.derived(data.train_x.shape[0]).total_steps and side.steps in side.wanted:
            side.snapshot(side.net, reverse=reverse)

    seed_ema = ns["NetworkEMA"]  # the seed's own class, before the recording subclass below replaces it

    class NetworkEMA(seed_ema):
        def __init__(self, net, decay):
            super().__init__(net, decay)
            side.ema_copy_step, side.ema_net = side.steps - 1, self.net_ema

        def update(self, current_net):
            super().update(current_net)
            side.ema_updates += 1

    step_lrs: list = []
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: step_lrs.append(opt.param_groups[0]["lr"]))
    ns.update(make_net=make_net_from_ours, get_batches=replay, NetworkEMA=NetworkEMA, init_whitening_conv=freeze_only)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(_Enough):
            ns["main"]()
    finally:
        hook.remove()
    side.lrs = [step_lrs[i:i + 2] for i in range(0, len(step_lrs), 2)]  # opt (non-bias), then opt_bias
    return side, seed_ema


def _compare(a: dict, b: dict) -> dict:
    """Per group (parameters, BN buffers, counters): the largest |a - b| and the largest |a - b| / max|b| over
    tensors, with the entry where each occurs."""
    out = {}
    for group, test in (("params", lambda k: k.endswith(("weight", "bias"))),
                        ("bn_buffers", lambda k: k.endswith(("running_mean", "running_var"))),
                        ("counters", lambda k: k.endswith("num_batches_tracked"))):
        worst_abs, worst_rel = (0.0, None), (0.0, None)
        for name in sorted(k for k in a if test(k)):
            x, y = a[name].double(), b[name].double()
            d = (x - y).abs().max().item()
            rel = d / max(y.abs().max().item(), 1e-30)
            worst_abs = max(worst_abs, (d, name), key=lambda t: t[0])
            worst_rel = max(worst_rel, (rel, name), key=lambda t: t[0])
        out[group] = dict(max_abs=worst_abs[0], max_abs_at=worst_abs[1], max_rel=worst_rel[0],
                          max_rel_at=worst_rel[1])
    return out


def _ema_arithmetic(ours: _Side, seed_ema: type, decay: float) -> dict:
    """Our EMA update (the one training uses on this device: foreach kernels on CUDA) against the seed's
    NetworkEMA.update on the same pair of states, bit for bit: the live network after the last compared step
    and, as the average, our EMA there (else the initial state). Training noise cannot enter: only the
    arithmetic is compared."""
    live = ours.net
    start = ours.ema_net.state_dict() if ours.ema_net is not None else ours.states[0]["net"]
    mine = train_module.EMA(live)
    theirs = seed_ema(live, decay=decay)
    with torch.no_grad():
        for target in (mine.net, theirs.net_ema):
            for name, value in target.state_dict().items():
                value.copy_(start[name])
    mine.update(decay)
    theirs.update(live)
    a, b = mine.net.state_dict(), theirs.net_ema.state_dict()
    differing = sorted(k for k in a if not torch.equal(a[k], b[k]))
    return dict(foreach=mine.foreach, entries=len(a), differing=differing)


def run_diff(setup: DiffSetup, seed_file: str) -> dict:
    """Run both and return the figures (JSON-ready)."""
    cfg = setup.config()
    d = cfg.derived()
    if min(setup.steps) < 1 or max(setup.steps) > d.total_steps:
        raise SeedError(f"--steps {list(setup.steps)} must lie in 1..{d.total_steps} (the run's steps)")
    if setup.epochs < 3:
        raise SeedError(f"--epochs {setup.epochs}: the seed's schedule needs 3 or more epochs")
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device).name
    dtype = PRECISIONS[precision].storage
    data = get_dataset(cfg.data, cfg.data_dir, cfg.train_subset, cfg.test_subset, device, dtype)
    ours, batches = _run_ours(setup, data, cfg)
    seed, seed_ema = _run_seed(setup, data, cfg, ours, batches, seed_file, dtype)
    ema_arithmetic = _ema_arithmetic(ours, seed_ema, d.ema_update_decay)
    steps = {}
    for s in sorted(setup.steps):
        a, b = ours.states[s], seed.states[s]
        row = dict(net=_compare(a["net"], b["net"]))
        if (a["ema"] is None) != (b["ema"] is None):
            row["ema"] = f"EMA exists in {'ours' if a['ema'] is not None else 'the seed'} only"
        elif a["ema"] is not None:
            row["ema"] = _compare(a["ema"], b["ema"])
        steps[s] = row
    n = min(len(ours.lrs), len(seed.lrs))
    lr_rel = max(abs(x - y) / max(abs(y), 1e-300) for i in range(n) for x, y in zip(ours.lrs[i], seed.lrs[i]))
    first = steps[min(setup.steps)]["net"]
    tol = ROUNDING * EPS[precision]
    checks = dict(
        lr_every_step=lr_rel <= 1e-12,
        ema_timing=(ours.ema_copy_step, ours.ema_updates) == (seed.ema_copy_step, seed.ema_updates),
        first_step_rounding=all(first[g]["max_rel"] <= tol for g in ("params", "bn_buffers"))
        and first["counters"]["max_abs"] == 0,
        ema_arithmetic=not ema_arithmetic["differing"],
    )
    return dict(setup=asdict(setup), precision=precision, rounding_tolerance=tol, steps=steps,
                lr_steps_compared=n, lr_max_rel=lr_rel,
                ema=dict(ours_copy_step=ours.ema_copy_step, seed_copy_step=seed.ema_copy_step,
                         ours_updates=ours.ema_updates, seed_updates=seed.ema_updates),
                ema_arithmetic=ema_arithmetic,
                checks=checks, ok=all(checks.values()))


def report_lines(result: dict) -> list[str]:
    lines = [f"{'step':>5} {'what':<16} {'max |ours - seed|':>18} {'max rel':>10}  worst entry (rel)"]
    for s, row in result["steps"].items():
        for part in ("net", "ema"):
            if part not in row:
                continue
            if isinstance(row[part], str):
                lines.append(f"{s:>5} {part:<16} {row[part]}")
                continue
            for group, f in row[part].items():
                lines.append(f"{s:>5} {part + ' ' + group:<16} {f['max_abs']:>18.3e} {f['max_rel']:>10.3e}  "
                             f"{f['max_rel_at']}")
    e = result["ema"]
    lines.append(f"lr, both groups, {result['lr_steps_compared']} steps: max relative difference "
                 f"{result['lr_max_rel']:.2e}")
    lines.append(f"EMA copy after step (0-based): ours {e['ours_copy_step']}, seed {e['seed_copy_step']}; "
                 f"updates by the last compared step: ours {e['ours_updates']}, seed {e['seed_updates']}")
    a = result["ema_arithmetic"]
    lines.append(f"EMA update ({'foreach' if a['foreach'] else 'entry by entry'}) against the seed's on the same "
                 f"states: {a['entries'] - len(a['differing'])} of {a['entries']} entries bit-identical"
                 + (f"; differing: {', '.join(a['differing'][:5])}" if a["differing"] else ""))
    lines.append("checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in result["checks"].items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    from ..writer import write_json
    from ..config import ConfigError
    from ..data import DataError
    from ..record import provenance
    from ..runtime import device_name

    p = argparse.ArgumentParser(prog="python -m speedrun.conformance.seed_diff", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed-file", default=".seed/main.py", help="the seed's main.py (hlb-CIFAR10 at 8959293)")
    p.add_argument("--data", choices=("cifar10", "synthetic"), default="cifar10")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR, then cache)")
    defaults = DiffSetup()
    for name in ("width", "epochs", "train_images", "batch_size", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    p.add_argument("--steps", default=",".join(map(str, defaults.steps)), help="compare after these steps")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--precision", choices=tuple(EPS), default="fp32", help="fp16 is CUDA only, as in the seed")
    p.add_argument("--out", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    origin = provenance()  # read before the work: the code that runs, not what the tree holds afterwards
    try:
        steps = tuple(sorted({int(s) for s in args.steps.split(",")}))
        setup = DiffSetup(width=args.width, epochs=args.epochs, train_images=args.train_images,
                          batch_size=args.batch_size, steps=steps, device=args.device, precision=args.precision,
                          seed=args.seed, data=args.data, data_dir=args.data_dir)
        result = run_diff(setup, args.seed_file)
    except (SeedError, ConfigError, DataError, RuntimeError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    print(f"ours vs the seed's main.py: width {args.width}, {args.epochs} epochs of {args.train_images} "
          f"{args.data} images, batch {args.batch_size}, {result['precision']} on {device_name(device)}")
    print("\n".join(report_lines(result)))
    if args.out:
        write_json(args.out, dict(result, device_name=device_name(device), **origin))
        print(f"figures written to {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
