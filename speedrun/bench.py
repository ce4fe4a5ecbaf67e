"""Training throughput of the recipe's step on synthetic data (images/s and achieved FLOP/s), and a matrix-multiply
probe per dtype that says whether reduced precision can pay on this device at all."""
from __future__ import annotations

import time

import torch

from .config import ConfigError, TrainConfig
from .data import get_dataset
from .flops import train_flops
from .augment import augment_batch, draw_augmentation, epoch_plan
from .engine import fast, get_program
from .runtime import PRECISIONS, device_name, prepare_device, resolve_device, resolve_precision, synchronize
from .train import build_training, init_state, train_step

__all__ = ["bench", "gemm_bench"]


def bench(config: TrainConfig, steps: int = 10, warmup: int = 2) -> dict:
    """Time `steps` training steps (augmentation, forward, backward, optimiser) after `warmup` untimed ones.
    With --compile or --cuda-graph the step is this process's StepProgram, built (compiled, captured) first;
    `compile_s` says how long that took, and `warmup` untimed steps follow it as for the eager step."""
    if steps < 1 or warmup < 0:
        raise ConfigError(f"bench needs steps >= 1 and warmup >= 0 (got steps {steps}, warmup {warmup})")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    prepare_device(device)
    n = config.batch_size * 2
    data = get_dataset("synthetic", None, n, 256, device, precision.storage)
    gen = torch.Generator(device=device).manual_seed(config.seed)
    compile_s = 0.0
    torch.manual_seed(config.seed)
    if fast(config):
        program, compile_s = get_program(config, device, precision, n)
        program.start_run(init_state(config, data, precision), data.padded(config.pad), data.train_y)

        def step() -> None:
            plan = epoch_plan(*draw_augmentation(n, config, gen))
            program.step(plan[:, :config.batch_size], 1.0)
    else:
        net, optimizer, loss_fn, autocast = build_training(config, data, device, precision)
        for group in optimizer.param_groups:
            group["lr"] = group["peak_lr"]
        padded = data.padded(config.pad)

        def step() -> None:
            perm, dy, dx, flip = draw_augmentation(n, config, gen)
            idx = perm[:config.batch_size]
            x = augment_batch(padded, idx, dy[idx], dx[idx], flip[idx])
            train_step(net, optimizer, loss_fn, x, data.train_y[idx], config.loss_scale, autocast, precision.loss_dtype)

    for _ in range(warmup):
        step()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - t0
    images = steps * config.batch_size
    return dict(width=config.width, device=str(device), device_name=device_name(device), precision=precision.name,
                compile=config.compile, cuda_graph=config.cuda_graph, compile_s=compile_s,
                batch_size=config.batch_size, steps=steps, warmup=warmup, seconds_per_step=seconds / steps,
                images_per_s=images / seconds, train_gflops_per_s=train_flops(config, images) / seconds / 1e9,
                threads=torch.get_num_threads(), torch=torch.__version__)


def gemm_bench(device: str = "auto", n: int = 2048, repeats: int = 5, threads: int | None = None) -> dict:
    """Throughput of an n×n×n matrix multiply in the compute dtype of each precision the device trains in
    (runtime.PRECISIONS: fp32 and bf16; fp16 too on GPUs). Convolutions use the same dot-product instructions
    (on CPU, oneDNN's brgemm kernels), so a dtype that is slow here will not make training faster: on a CPU
    without AMX, bf16 products can be slower than fp32 ones (0.54x on the development VM)."""
    if n < 1 or repeats < 1:
        raise ConfigError(f"gemm size {n} and repeats {repeats} must both be >= 1")
    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    gflops = {}
    for name, precision in PRECISIONS.items():
        if dev.type not in precision.devices:
            continue
        a = torch.randn(n, n, device=dev, generator=gen).to(precision.compute)
        b = torch.randn(n, n, device=dev, generator=gen).to(precision.compute)
        a @ b  # warm-up: kernel selection, workspace allocation
        synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(dev)
        gflops[name] = 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9
    return dict(device=str(dev), device_name=device_name(dev), n=n, repeats=repeats, gflops_per_s=gflops,
                threads=torch.get_num_threads(), torch=torch.__version__)
