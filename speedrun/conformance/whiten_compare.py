"""python -m speedrun.conformance.whiten_compare: our whitening ("pooled") against the seed's ("chunk_average") on
real data.

For each of the 12 filters it prints |cos| and the norm ratio chunk_average / pooled over several random chunk
orders (the seed draws a fresh one every run), the same figures between the seed's own runs, and how many of
the seed's chunks returned that eigenvector with the minority sign (the sign fragility: eigh fixes a vector only
up to sign, and the seed averages whatever it gets, so disagreeing chunks cancel).
The criterion for "reproduces the seed's filters": |cos| > 0.999 (directions within 2.6 degrees) and norms
within 0.1%.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import asdict, dataclass

import torch

from ..whiten import chunk_eigens, filters_from, pooled_eigen

__all__ = ["COS_MIN", "NORM_TOL", "FilterFigures", "compare", "report_lines", "main"]

COS_MIN = 0.999  # the bar for "the same filter": an angle of at most 2.6 degrees (cos 0.999)
NORM_TOL = 1e-3  # ... and for "the same norm" (0.1%)


@dataclass(frozen=True)
class FilterFigures:
    """One filter's figures over every chunk order tried (k = 1..12 in descending eigenvalue order)."""

    k: int
    eigenvalue: float  # of the pooled covariance
    cos_min: float  # min over orders of |cos(pooled, chunk_average)|
    ratio_min: float  # norm(chunk_average) / norm(pooled), smallest over orders
    ratio_max: float
    seed_cos_min: float  # min over pairs of orders of |cos(chunk_average_a, chunk_average_b)|: the seed vs itself
    seed_ratio_min: float  # norm ratio between two of the seed's runs, smallest and largest over pairs
    seed_ratio_max: float
    minority_sign_chunks: tuple[int, ...]  # per order: chunks whose eigenvector has the less common sign

    @property
    def pooled_matches_seed(self) -> bool:
        return self.cos_min > COS_MIN and max(1 - self.ratio_min, self.ratio_max - 1) < NORM_TOL

    @property
    def seed_matches_itself(self) -> bool:
        return self.seed_cos_min > COS_MIN and max(1 - self.seed_ratio_min, self.seed_ratio_max - 1) < NORM_TOL


def _cos_ratio(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row |cos| and norm ratio |b| / |a| of two 12×d filter banks, in float64."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    cos = (a * b).sum(1).abs() / (a.norm(dim=1) * b.norm(dim=1))
    return cos, b.norm(dim=1) / a.norm(dim=1)


def compare(images: torch.Tensor, *, eps: float = 1e-2, chunk: int = 5000, orders: int = 8,
            seed: int = 0) -> list[FilterFigures]:
    """Pooled filters once; the seed's chunk-average filters for `orders` chunk orders (generator seeds
    seed, seed+1, ...); figures per filter."""
    channels = images.shape[1]
    values, rows = pooled_eigen(images, chunk)
    pooled = filters_from(values, rows, eps, channels)
    seeded, minority = [], []
    for s in range(seed, seed + orders):
        gen = torch.Generator(device=images.device).manual_seed(s)
        chunk_values, chunk_rows = chunk_eigens(images, chunk, gen)  # K×12, K×12×12
        seeded.append(filters_from(chunk_values.mean(0), chunk_rows.mean(0), eps, channels))
        dots = torch.einsum("kid,id->ki", chunk_rows.double(), rows.to(chunk_rows.device).double())
        negative = (dots < 0).sum(0)
        minority.append(torch.minimum(negative, dots.shape[0] - negative).tolist())
    cos, ratio = zip(*(_cos_ratio(pooled, f) for f in seeded))
    cos, ratio = torch.stack(cos), torch.stack(ratio)  # orders × 12
    pairs = [_cos_ratio(a, b) for a, b in itertools.permutations(seeded, 2)]
    if pairs:
        seed_cos, seed_ratio = torch.stack([c for c, _ in pairs]), torch.stack([r for _, r in pairs])
    else:  # one order: nothing to compare the seed with
        seed_cos = seed_ratio = torch.full((1, 12), float("nan"), dtype=torch.float64)
    return [FilterFigures(k=i + 1, eigenvalue=float(values[i]), cos_min=float(cos[:, i].min()),
                          ratio_min=float(ratio[:, i].min()), ratio_max=float(ratio[:, i].max()),
                          seed_cos_min=float(seed_cos[:, i].min()), seed_ratio_min=float(seed_ratio[:, i].min()),
                          seed_ratio_max=float(seed_ratio[:, i].max()),
                          minority_sign_chunks=tuple(m[i] for m in minority))
            for i in range(values.shape[0])]


def report_lines(figures: list[FilterFigures], chunks: int) -> list[str]:
    head = (f"{'k':>2} {'eigenvalue':>10} | {'pooled vs seed: |cos| min':>25} {'norm ratio range':>19} | "
            f"{'seed vs seed: |cos| min':>23} {'norm ratio range':>19} | minority-sign chunks of {chunks}, per order")
    lines = [head]
    for f in figures:
        lines.append(f"{f.k:>2} {f.eigenvalue:>10.3e} | {f.cos_min:>25.7f} {f.ratio_min:>9.5f}-{f.ratio_max:<9.5f} | "
                     f"{f.seed_cos_min:>23.7f} {f.seed_ratio_min:>9.5f}-{f.seed_ratio_max:<9.5f} | "
                     f"{','.join(map(str, f.minority_sign_chunks))}")
    same = [f.k for f in figures if f.pooled_matches_seed]
    stable = [f.k for f in figures if f.seed_matches_itself]
    lines.append(f"criterion |cos| > {COS_MIN} and norms within {NORM_TOL:.1%}: pooled reproduces the seed's "
                 f"filters {same} of 12; the seed reproduces its own filters (between chunk orders) {stable}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from ..writer import write_json
    from ..config import ConfigError
    from ..data import DataError, get_dataset
    from ..record import provenance
    from ..runtime import device_name, resolve_device

    parser = argparse.ArgumentParser(prog="python -m speedrun.conformance.whiten_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder holding cifar-10-batches-py (default: $CIFAR10_DIR, then cache)")
    parser.add_argument("--data", choices=("cifar10", "synthetic"), default="cifar10",
                        help="synthetic: a dry run of the command (its figures say nothing about CIFAR-10)")
    parser.add_argument("--train-images", type=int, help="use the first N training images (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (the seed whitens on the GPU)")
    parser.add_argument("--data-dtype", choices=("fp32", "fp16"), default="fp32",
                        help="storage dtype of the normalised images (the seed keeps them in fp16)")
    parser.add_argument("--orders", type=int, default=8, help="random chunk orders to try (>= 2)")
    parser.add_argument("--chunk", type=int, default=5000, help="images per chunk (the seed: 5000)")
    parser.add_argument("--eps", type=float, default=1e-2, help="filter_k = v_k / sqrt(lambda_k + eps)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed of the first chunk order")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    origin = provenance()  # read before the work: the code that runs, not what the tree holds afterwards
    try:
        if args.orders < 2 or args.chunk < 1:
            raise ConfigError(f"--orders {args.orders} --chunk {args.chunk}: need --orders >= 2 and --chunk >= 1")
        device = resolve_device(args.device)
        dtype = torch.float16 if args.data_dtype == "fp16" else torch.float32
        data = get_dataset(args.data, args.data_dir, args.train_images, 1, device, dtype)
        figures = compare(data.train_x, eps=args.eps, chunk=args.chunk, orders=args.orders, seed=args.seed)
    except (ConfigError, DataError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n = data.train_x.shape[0]
    chunks = -(-n // args.chunk)
    print(f"whitening: pooled (ours) vs chunk_average (the seed's) on {n} training images ({data.source}), "
          f"{args.data_dtype} data on {device_name(device)}, {chunks} chunks of {args.chunk}, "
          f"{args.orders} chunk orders, eps {args.eps}")
    print("\n".join(report_lines(figures, chunks)))
    if args.out:
        write_json(args.out, dict(
            what="whitening filters: pooled (ours) vs chunk_average (the seed's), speedrun.conformance.whiten_compare",
            device=str(device), device_name=device_name(device), data_dtype=args.data_dtype, data_source=data.source,
            train_images=n, chunk=args.chunk, chunks=chunks, orders=args.orders, seed=args.seed, eps=args.eps,
            criterion=dict(cos_min=COS_MIN, norm_tol=NORM_TOL),
            pooled_matches_seed=[f.k for f in figures if f.pooled_matches_seed],
            seed_matches_itself=[f.k for f in figures if f.seed_matches_itself],
            filters=[asdict(f) for f in figures], host=origin["host"], git_commit=origin["git_commit"],
            git_dirty=origin["git_dirty"], versions=origin["versions"], threads=origin["threads"]))
        print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
