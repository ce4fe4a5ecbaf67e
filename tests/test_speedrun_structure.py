"""The network and its counts against the recipe's reference numbers."""
import pytest
import torch

from speedrun import TrainConfig, model_stats
from speedrun.config import stage_widths
from speedrun.model import Net


@pytest.mark.parametrize("width, params, trainable, mflops", [
    (64, 6_570_488, 6_568_136, 537.91),
    (128, 26_260_320, None, 2_149.31),
])
def test_counts_match_reference(width, params, trainable, mflops):
    stats = model_stats(width)
    assert stats["num_params"] == params, f"width {width}: {stats['num_params']} parameters, reference {params}"
    if trainable is not None:
        assert stats["num_trainable_params"] == trainable
    assert round(stats["forward_flops_per_image"] / 1e6, 2) == mflops


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
