"""The precision table and device helpers (speedrun/runtime.py): one entry is all a new precision needs."""
import pytest
import torch

from speedrun import ConfigError, TrainConfig, train, train_flops
from speedrun import runtime
from speedrun.bench import bench, gemm_bench
from speedrun.data import get_dataset
from speedrun.runtime import Precision, resolve_precision
from speedrun.train import build_training, train_step
from tests.conftest import tiny_config

CPU = torch.device("cpu")


def test_config_accepts_exactly_the_table():
    for name in ("auto", *runtime.PRECISIONS):
        assert TrainConfig(precision=name).precision == name
    with pytest.raises(ConfigError, match="one of auto, fp32, bf16, fp16"):
        TrainConfig(precision="fp8")


def test_auto_and_device_rules():
    assert resolve_precision("auto", CPU).name == "fp32"
    assert resolve_precision("auto", torch.device("cuda")).name == "fp16", "the reference trains pure fp16 on CUDA"
    bf16 = resolve_precision("bf16", CPU)
    assert bf16.storage == torch.float32 and bf16.compute == torch.bfloat16
    with pytest.raises(RuntimeError, match="'fp16' is not supported on CPU; use fp32 or bf16"):
        resolve_precision("fp16", CPU)


def test_autocast_context_follows_the_entry():
    x = torch.randn(4, 4)
    with resolve_precision("bf16", CPU).autocast_context(CPU)():
        assert (x @ x).dtype == torch.bfloat16
    with resolve_precision("fp32", CPU).autocast_context(CPU)():
        assert (x @ x).dtype == torch.float32


def test_the_loss_dtype_is_the_entrys_and_keeps_the_former_rule():
    """The loss runs in the entry's loss_dtype: in half exactly where the logits come out in half (the rule it
    replaced, which read the logits' dtype), so pure fp16 keeps the reference's fp16 loss and the rest fp32."""
    x = torch.randn(8, 4)
    for p in runtime.PRECISIONS.values():
        # the logits' dtype this entry's forward gives: storage dtype, or the autocast dtype for the products
        logits_dtype = p.autocast or p.storage
        assert p.loss_dtype == (torch.float16 if logits_dtype == torch.float16 else torch.float32), p.name
    config = tiny_config(batch_size=8)
    data = get_dataset("synthetic", None, 64, 16, CPU, torch.float32)
    for name in ("fp32", "bf16"):
        precision = resolve_precision(name, CPU)
        net, optimizer, loss_fn, autocast = build_training(config, data, CPU, precision)
        x, y = data.train_x[:8], data.train_y[:8]
        with torch.no_grad(), autocast():
            former = loss_fn(net(x).float(), y)
        logits, losses = train_step(net, optimizer, loss_fn, x, y, config.loss_scale, autocast, precision.loss_dtype)
        assert losses.dtype == precision.loss_dtype and torch.equal(losses.detach(), former), name


def test_a_new_precision_is_one_table_entry(monkeypatch):
    """fp64, added only to the table: config validation, training, the benchmark and the GEMM probe take it."""
    monkeypatch.setitem(runtime.PRECISIONS, "fp64", Precision("fp64", torch.float64, None, ("cpu",)))
    config = tiny_config(precision="fp64", epochs=1, train_subset=128, test_subset=64, batch_size=64)  # fp64 is slow
    precision = resolve_precision("fp64", CPU)
    data = get_dataset("synthetic", None, 128, 64, CPU, precision.storage)
    net, *_ = build_training(config, data, CPU, precision)
    assert net.head.weight.dtype == torch.float64
    record = train(config)
    assert record["status"] == "ok" and record["precision"] == "fp64"
    assert bench(config.replace(batch_size=16), steps=1, warmup=0)["precision"] == "fp64"
    assert set(gemm_bench("cpu", n=32, repeats=1)["gflops_per_s"]) == {"fp32", "bf16", "fp64"}


def test_bench_figures_use_train_flops():
    config = tiny_config(batch_size=64)
    result = bench(config, steps=2, warmup=0)
    seconds = result["seconds_per_step"] * result["steps"]
    assert result["train_gflops_per_s"] == pytest.approx(train_flops(config, 2 * 64) / seconds / 1e9)
    assert result["images_per_s"] == pytest.approx(2 * 64 / seconds)


def test_unknown_device_is_a_clear_error():
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available here; use --device cpu or auto"):
            runtime.resolve_device("cuda:0")
    assert runtime.resolve_device("cpu") == CPU
    runtime.synchronize(CPU)  # a no-op, but it must exist for every device type
    assert runtime.device_name(CPU)


def test_cpu_name_carries_the_thread_count_at_the_time_of_the_call():
    """A worker may train runs at different thread counts: each record must name the count it ran with."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = runtime.device_name(CPU)
        torch.set_num_threads(2)
        assert one.endswith("(1 threads)") and runtime.device_name(CPU).endswith("(2 threads)")
        assert runtime.device_name(CPU, 5) == one.replace("(1 threads)", "(5 threads)")
    finally:
        torch.set_num_threads(before)
