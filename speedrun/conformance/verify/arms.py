"""The side-by-side's arms, each one process: `ours` (N runs of our trainer, records appended to a JSON-lines
file as each finishes), `seed-cpu` (the seed's own main() on the CPU through seed_load, for dry runs) and
`standin` (our trainer printing the seed's table, for dry runs where the seed's file is absent); and
`seed-data`, the seed's data cache written from a CIFAR-10 folder.

On a GPU the seed arm is no wrapper: the seed's main.py itself runs in a prepared folder (see `prepare_seed`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..seed_load import SEED_BLOB, SeedError, git_blob_id
from .seedtable import seed_close, seed_header, seed_row

__all__ = ["prepare_seed", "append_line", "main", "RUNS_LINE"]

# The one statement of the seed changed for the proof: its run count (25 in the file).
RUNS_LINE = "for run_num in range(25):"


def prepare_seed(seed_main: str | Path, folder: Path, data_dir: Path, runs: int) -> Path:
    """A copy of the seed's main.py in `folder` that makes `runs` runs instead of 25, and the data where the seed
    looks for it: `cifar10/cifar-10-batches-py` beside it (a link to the given folder; torchvision finds the
    files there, checks their md5 and downloads nothing). The first seed process writes its `data.pt` cache
    there too, and a later one in the same folder reads it. Returns the copy's path."""
    source = Path(seed_main).read_bytes()
    if git_blob_id(source) != SEED_BLOB:
        raise SeedError(f"{seed_main} is not hlb-CIFAR10 main.py at 8959293 (git blob {git_blob_id(source)})")
    text = source.decode()
    if text.count(RUNS_LINE) != 1:
        raise SeedError(f"{seed_main}: expected one `{RUNS_LINE}` to change the run count")
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "main.py"
    copy.write_text(text.replace(RUNS_LINE, f"for run_num in range({runs}):"))
    link = folder / "cifar10" / "cifar-10-batches-py"
    link.parent.mkdir(exist_ok=True)
    batches = data_dir if (data_dir / "data_batch_1").exists() else data_dir / "cifar-10-batches-py"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(batches.resolve(), target_is_directory=True)
    return copy


def _seed_data(args) -> int:
    """The seed's own data cache, data.pt, in its format, from the given CIFAR-10 folder: normalised fp16 images
    and int64 labels on the GPU (train and eval), as its loading block saves them (it also shuffles the training
    set once, which changes nothing: whitening and batches permute it anyway). For machines whose /dev/shm
    cannot carry the seed's DataLoader (a 600 MB batch from a worker process)."""
    import torch

    from ...data import get_dataset

    data = get_dataset("cifar10", args.data_dir, None, None, torch.device(args.device), torch.float16)
    cache = {"train": {"images": data.train_x.contiguous(), "targets": data.train_y},
             "eval": {"images": data.test_x.contiguous(), "targets": data.test_y}}
    torch.save(cache, args.out)
    print(f"wrote the seed's data.pt from {data.source}: {len(data.train_y)} + {len(data.test_y)} images", flush=True)
    return 0


def append_line(path: str | Path, obj: dict) -> None:
    """One JSON object as one line, flushed to disk before returning: a process killed later loses nothing."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _ours(args, config) -> int:
    from ...cli import print_row
    from ...train import train

    for i in range(args.runs):
        record = train(config.replace(seed=args.first_seed + i), progress=print_row)
        print(f"{args.label} run {i + 1}/{args.runs}: status {record['status']}, ema_val_acc {record['ema_val_acc']}, "
              f"train_time_s {record['train_time_s']:.3f}, compile_s {record['compile_s']:.1f}", flush=True)
        append_line(args.jsonl, dict(record, arm=args.label, run_in_process=i))
        if record["status"] != "ok":
            return 1
    return 0


def _seed_cpu(args) -> int:
    """The seed's own main(), with our synthetic data, on the CPU in fp32 (seed_load's rewrites)."""
    import torch

    from ...data import get_dataset
    from ..seed_load import load_seed

    data = get_dataset("synthetic", None, args.train_images, args.test_images, torch.device("cpu"), torch.float32)
    seed_data = {"train": {"images": data.train_x.clone(), "targets": data.train_y},
                 "eval": {"images": data.test_x, "targets": data.test_y}}
    ns = load_seed(args.seed_main, data=seed_data, width=args.width, epochs=args.epochs, batch_size=args.batch_size)
    ns["print_training_details"](ns["logging_columns_list"], column_heads_only=True)  # skipped at load
    for _ in range(args.runs):
        ns["main"]()
    sys.stdout.flush()
    return 0


def _standin(args, config) -> int:
    """Our eager trainer, printed as the seed prints: only for dry runs without the seed's file."""
    from ...train import train

    print(seed_header(), flush=True)
    for i in range(args.runs):
        line = ""
        for row in train(config.replace(seed=args.first_seed + i))["history"]:
            line = seed_row(row)
            print(line, flush=True)
        print(seed_close(line), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from ...cli import add_config_flags, config_from_args

    parser = argparse.ArgumentParser(prog="python -m speedrun.conformance.verify.arms", description=__doc__)
    sub = parser.add_subparsers(dest="arm", required=True)
    p = sub.add_parser("ours", help="N runs of our trainer, each record appended to --jsonl")
    add_config_flags(p)
    p.add_argument("--label", required=True)
    p.add_argument("--jsonl", required=True)
    s = sub.add_parser("standin", help="our trainer, printed as the seed prints (dry runs)")
    add_config_flags(s)
    for q in (p, s):
        q.add_argument("--runs", type=int, required=True)
        q.add_argument("--first-seed", type=int, default=0)
    c = sub.add_parser("seed-cpu", help="the seed's main() on the CPU with synthetic data (dry runs)")
    c.add_argument("--seed-main", required=True)
    for name, default in (("runs", 2), ("width", 4), ("epochs", 3), ("train_images", 1024), ("test_images", 1000),
                          ("batch_size", 256)):
        c.add_argument("--" + name.replace("_", "-"), type=int, default=default)
    d = sub.add_parser("seed-data", help="write the seed's data.pt from a CIFAR-10 folder (CUDA)")
    d.add_argument("--data-dir", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--device", default="cuda", help="where the tensors live (the seed loads them onto CUDA)")
    args = parser.parse_args(argv)
    if args.arm == "seed-data":
        return _seed_data(args)
    if args.arm == "ours":
        return _ours(args, config_from_args(args))
    if args.arm == "standin":
        return _standin(args, config_from_args(args))
    return _seed_cpu(args)


if __name__ == "__main__":
    sys.exit(main())
