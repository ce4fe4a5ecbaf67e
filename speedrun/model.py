"""The v0.3.0 network: frozen 2×2 whitening conv, 1×1 projection, three conv groups (two with
squeeze-excite and a residual), global max pool, a bias-free linear head scaled by 0.1."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import TrainConfig, stage_widths

__all__ = ["Net", "build_net", "BatchNorm"]


class BatchNorm(nn.BatchNorm2d):
    """Scale fixed at 1 and frozen, shift trained from 0 (the reference's choice)."""

    def __init__(self, channels: int, eps: float, momentum: float):
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding="same", bias=False)


class SqueezeExcite(nn.Module):
    """Channel gate from the block's input: spatial mean -> Linear -> GELU -> Linear -> sigmoid."""

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        hidden = max(1, channels // ratio)  # small widths never drop below one channel
        self.down = nn.Linear(channels, hidden)
        self.up = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(nn.functional.gelu(self.down(x.mean(dim=(2, 3))))))[:, :, None, None]


class ConvGroup(nn.Module):
    """conv -> maxpool 2 -> BN -> GELU; unless `short`: two more conv/BN/GELU with the SE gate multiplied in
    after the last conv and the group's first activation added back."""

    def __init__(self, c_in: int, c_out: int, short: bool, cfg: TrainConfig):
        super().__init__()
        bn = dict(eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        self.conv1, self.norm1 = conv3x3(c_in, c_out), BatchNorm(c_out, **bn)
        self.short = short
        if not short:
            self.se = SqueezeExcite(c_out, cfg.se_ratio)
            self.conv2, self.norm2 = conv3x3(c_out, c_out), BatchNorm(c_out, **bn)
            self.conv3, self.norm3 = conv3x3(c_out, c_out), BatchNorm(c_out, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gelu = nn.functional.gelu
        x = gelu(self.norm1(nn.functional.max_pool2d(self.conv1(x), 2)))  # maxpool floors: 31->15->7->3
        if self.short:
            return x
        residual = x
        gate = self.se(residual)
        x = gelu(self.norm2(self.conv2(x)))
        x = gelu(self.norm3(self.conv3(x) * gate))
        return x + residual


class Net(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.config = cfg
        init, b1, b2, b3 = stage_widths(cfg.width)
        # Frozen PCA-whitening filters over 2×2×3 patches; `train.build_training` copies in the filters that
        # `whiten.whitening_filters` computes from the training images.
        self.whiten = nn.Conv2d(3, 12, kernel_size=2, padding=0, bias=False)
        self.whiten.weight.requires_grad_(False)
        self.project = nn.Conv2d(12, init, kernel_size=1, bias=False)
        self.norm0 = BatchNorm(init, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        self.group1 = ConvGroup(init, b1, short=False, cfg=cfg)
        self.group2 = ConvGroup(b1, b2, short=True, cfg=cfg)
        self.group3 = ConvGroup(b2, b3, short=False, cfg=cfg)
        self.head = nn.Linear(b3, 10, bias=False)
        self.logit_scale = cfg.logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.norm0(self.project(self.whiten(x))))
        x = self.group3(self.group2(self.group1(x)))
        x = torch.amax(x, dim=(2, 3))
        return self.head(x) * self.logit_scale

    def num_params(self, trainable_only: bool = False) -> int:
        """Parameters of this network: all of them (frozen whitening and BN scales included), or only those
        the optimiser updates."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def forward_flops_per_image(self) -> int:
        """FLOPs of one forward pass over a 32×32 image, as torch.utils.flop_counter counts them (matrix
        products and convolutions, 2 per multiply-add). Counted on a twin built on the meta device from this
        network's config, so it costs no memory and works whatever device or dtype this network is on."""
        with torch.device("meta"):
            twin = Net(self.config)
            x = torch.empty(1, 3, 32, 32)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            twin.eval()(x)
        return int(counter.get_total_flops())


def build_net(cfg: TrainConfig, device: torch.device | str = "cpu") -> Net:
    """The network with PyTorch's default init (seeded by the caller), channels_last on `device`."""
    return Net(cfg).to(device=device, memory_format=torch.channels_last)
