"""The network and its counts against the recipe's reference numbers; the package's module rules."""
import ast
from pathlib import Path

import pytest
import torch

from speedrun import TrainConfig, model_stats, train_flops
from speedrun.config import stage_widths
from speedrun.model import Net

PACKAGE = Path(__file__).resolve().parents[1] / "speedrun"


@pytest.mark.parametrize("width, params, trainable, mflops", [
    (64, 6_570_488, 6_568_136, 537.91),
    (128, 26_260_320, None, 2_149.31),
])
def test_counts_match_reference(width, params, trainable, mflops):
    stats = model_stats(TrainConfig(width=width))
    assert stats["num_params"] == params, f"width {width}: {stats['num_params']} parameters, reference {params}"
    if trainable is not None:
        assert stats["num_trainable_params"] == trainable
    assert round(stats["forward_flops_per_image"] / 1e6, 2) == mflops


@pytest.mark.parametrize("width", [1, 2, 3, 5, 13, 16, 64, 100, 128])
@pytest.mark.parametrize("se_ratio", [1, 4, 16])
def test_flops_from_shapes_equal_flop_counter(width, se_ratio):
    """forward_flops_per_image sums the layers' shapes; torch's FlopCounterMode, running the forward on the meta
    device, is the oracle (a product added to forward() and not to the sums fails here)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = Net(TrainConfig(width=width, se_ratio=se_ratio))
        x = torch.empty(1, 3, 32, 32)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(x)
    assert net.forward_flops_per_image() == counter.get_total_flops()


def test_stage_widths():
    assert stage_widths(64) == (32, 128, 256, 512)
    assert stage_widths(128) == (64, 256, 512, 1024)
    assert min(stage_widths(1)) == 1, "small widths must never drop a stage to zero channels"


@pytest.mark.parametrize("width", [1, 2, 5])
def test_small_widths_run(width):
    net = Net(TrainConfig(width=width))
    out = net(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    assert min(m.down.out_features for m in net.modules() if hasattr(m, "down")) >= 1


def test_spatial_sizes_floor():
    """31 -> 15 -> 7 -> 3, as the recipe says."""
    net = Net(TrainConfig(width=8))
    sizes = []
    for name in ("group1", "group2", "group3"):
        getattr(net, name).register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    x = net.whiten(torch.randn(2, 3, 32, 32))
    assert x.shape[-1] == 31
    net(torch.randn(2, 3, 32, 32))
    assert sizes == [15, 7, 3]


def test_frozen_and_bn_settings():
    net = Net(TrainConfig())
    assert not net.whiten.weight.requires_grad
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.weight.requires_grad and m.bias.requires_grad for m in bns)
    assert all(m.eps == 1e-12 and m.momentum == 0.8 for m in bns)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.bias is None for m in convs)
    assert net.head.bias is None


def test_network_counts_itself_for_any_config():
    """A non-default se_ratio changes the SE layers; the reported size must follow (a count keyed on width alone
    would not). Checked against a direct count of a real network's parameters."""
    config = TrainConfig(width=64, se_ratio=4)
    net = Net(config)
    direct = sum(p.numel() for p in net.parameters())
    assert model_stats(config)["num_params"] == direct == net.num_params()
    assert model_stats(config)["num_trainable_params"] == sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert direct != model_stats(TrainConfig(width=64))["num_params"], "se_ratio must change the count"
    # Forward FLOPs differ by the SE layers' products alone: 2 FLOPs per multiply-add, down (C×h) and up (h×C)
    # in group1 (C=128) and group3 (C=512), hidden h = C // se_ratio.
    se = sum(2 * 2 * c * (c // 4 - c // 16) for c in (128, 512))
    assert model_stats(config)["forward_flops_per_image"] - model_stats(TrainConfig(width=64))[
        "forward_flops_per_image"] == se


def test_model_stats_takes_a_config():
    with pytest.raises(TypeError, match="takes a TrainConfig"):
        model_stats(64)
    stats = model_stats(TrainConfig(width=8))
    stats["num_params"] = -1  # a caller editing its copy must not change what the next caller gets
    assert model_stats(TrainConfig(width=8))["num_params"] > 0


def test_train_flops_is_three_forward_passes_per_image():
    config = TrainConfig(width=8, epochs=3, train_subset=1024, batch_size=256)
    forward = model_stats(config)["forward_flops_per_image"]
    assert train_flops(config, 10) == 3 * forward * 10
    assert train_flops(config) == 3 * forward * (1024 // 256) * 3 * 256, "default: every step of the planned run"


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_rules(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 350, f"{path.name} is over 350 lines; split it by job"
    if path.name != "__main__.py":
        assert "__all__" in text, f"{path.name} must declare __all__"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
            assert not private, f"{path.name} imports private {private} from .{node.module}; make it public"
