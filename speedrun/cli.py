"""python -m speedrun train | info | bench | data — flags generated from TrainConfig's fields."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

from .config import ConfigError, TrainConfig
from .table import epoch_header, epoch_line
from .writer import json_text, write_json

__all__ = ["main", "exit_status"]


def add_config_flags(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """One --flag per TrainConfig field, typed from the annotation, default taken from the dataclass."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        args = typing.get_args(kind)
        base = next((a for a in args if a is not type(None)), kind) if args else kind
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            parser.add_argument(flag, dest=f.name, type=base, default=f.default, metavar=base.__name__.upper())


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def print_row(row: dict) -> None:
    if row["epoch"] == 1:
        print(epoch_header(), flush=True)
    print(epoch_line(row), flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    config = config_from_args(args)
    if args.out and Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a folder; give a file path such as {args.out}/run.json")
    record = train(config, progress=None if args.quiet else print_row)
    if record["status"] == "ok":
        print(f"ema_val_acc {record['ema_val_acc']:.4f}  train_time_s {record['train_time_s']:.2f}  "
              f"device {record['device_name']} ({record['precision']})")
    else:
        print(f"{record['status']}: {record['error']}", file=sys.stderr)
    if args.out:
        write_json(args.out, record)
        print(f"record written to {args.out}")
    return 0 if record["status"] == "ok" else 1


def cmd_info(args: argparse.Namespace) -> int:
    from .flops import model_stats, train_flops

    config = config_from_args(args)
    d = config.derived()
    info = dict(width=config.width, epochs=config.epochs, stage_widths=list(d.stage_widths), **model_stats(config),
                steps=d.total_steps, steps_per_epoch=d.steps_per_epoch, warmup_steps=d.warmup_steps,
                decay_end_step=d.decay_end_step, ema_copy_step=d.ema_copy_step, ema_updates=d.ema_updates,
                train_flops=train_flops(config),
                flops_per_epoch=train_flops(config, d.steps_per_epoch * config.batch_size))
    print(json_text(info), end="")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench, gemm_bench

    if args.gemm:
        config = config_from_args(args)
        result = gemm_bench(config.device, n=args.gemm_size, repeats=args.steps, threads=config.threads)
        rates = result["gflops_per_s"]
        print(f"{result['n']}³ matrix multiply on {result['device_name']}: "
              + ", ".join(f"{name} {rate:.1f} GFLOP/s" for name, rate in rates.items()))
        ratio = rates["bf16"] / rates["fp32"]
        if result["device"] == "cpu":
            hint = ("bf16 may pay: compare `bench --precision bf16` with `--precision fp32`" if ratio > 1.1 else
                    "expect --precision bf16 to train no faster than fp32 here; keep fp32")
            print(f"bf16 products run at {ratio:.2f}× fp32: {hint}")
        if args.out:
            write_json(args.out, result)
        return 0
    result = bench(config_from_args(args), steps=args.steps, warmup=args.warmup)
    mode = " + ".join(m for m, on in (("compiled", result["compile"]), ("CUDA graph", result["cuda_graph"])) if on)
    built = f" ({mode}, built in {result['compile_s']:.1f} s)" if mode else ""
    print(f"width {result['width']} {result['precision']} on {result['device_name']}{built}: "
          f"{result['images_per_s']:.1f} images/s, "
          f"{result['train_gflops_per_s']:.1f} GFLOP/s ({result['seconds_per_step']:.3f} s/step of "
          f"{result['batch_size']})")
    if args.out:
        write_json(args.out, result)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .data import load_numpy, resolve_data_dir, verify

    folder = resolve_data_dir(args.data_dir, download=args.download)
    verify(folder)
    train_x, _, test_x, _ = load_numpy(folder)
    print(f"CIFAR-10 OK at {folder}: {len(train_x)} training and {len(test_x)} test images, md5 verified")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m speedrun", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one run and print the per-epoch table (exit 1 if it diverged)")
    add_config_flags(p)
    p.add_argument("--out", help="write the run record (JSON) here")
    p.add_argument("--quiet", action="store_true", help="no per-epoch table")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("info", help="parameters, FLOPs and schedule points as JSON (no data needed)")
    add_config_flags(p, only=("width", "epochs", "se_ratio", "batch_size", "train_subset", "ema_epochs", "warmup_frac"))
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("bench", help="training throughput on synthetic data")
    add_config_flags(p, only=("width", "device", "precision", "compile", "cuda_graph", "threads", "batch_size", "seed"))
    p.add_argument("--steps", type=int, default=10, help="timed steps (with --gemm: timed products per dtype)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--gemm", action="store_true",
                   help="instead, time a square matrix multiply in each dtype: does reduced precision pay here?")
    p.add_argument("--gemm-size", type=int, default=2048, help="matrix side for --gemm")
    p.add_argument("--out", help="also write the figures as JSON here")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("data", help="locate and verify CIFAR-10 (downloads into the user cache if allowed)")
    p.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR, then cache)")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def exit_status(code: int) -> int:
    """`code`, made to stick as the process's exit status; `python -m speedrun` and `python -m studies` exit
    through it. CPython marks a KeyboardInterrupt that ended any eval() or exec() of a string (typing's annotation
    strings, generated code) as unhandled even when an outer `except` caught it, and at exit then ends the process
    by SIGINT: a parent would see -2, not the 130 of an orderly stop. Evaluating a string once more clears that
    mark; a KeyboardInterrupt that really escapes main() still ends the process by SIGINT, as it should."""
    eval("None")  # a constant: only resets the interpreter's unhandled-KeyboardInterrupt mark
    return code


if __name__ == "__main__":
    sys.exit(exit_status(main()))
