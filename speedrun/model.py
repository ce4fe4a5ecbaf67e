"""The v0.3.0 network: frozen 2×2 whitening conv, 1×1 projection, three conv groups (two with
squeeze-excite and a residual), global max pool, a bias-free linear head scaled by 0.1."""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig, stage_widths

__all__ = ["Net", "build_net", "BatchNorm"]


class BatchNorm(nn.BatchNorm2d):
    """Scale fixed at 1 and frozen, shift trained from 0 (the reference's choice)."""

    def __init__(self, channels: int, eps: float, momentum: float):
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding="same", bias=False)


# FLOPs as torch.utils.flop_counter counts them: 2 per multiply-add of convolutions and matrix products, nothing
# for the rest (norms, activations, pooling, the gate's product). Read off the layers' shapes beside each forward:
# counting by running one on the meta device cost 1.5 s of first-use imports per process (a dry run pays it), and
# tests hold these sums to FlopCounterMode's count.
def conv_flops(conv: nn.Conv2d, size: int) -> tuple[int, int]:
    """FLOPs of `conv` over one size×size input, and the output's size (stride 1: this network's only kind)."""
    kh, kw = conv.kernel_size
    out = size if conv.padding == "same" else size + 2 * conv.padding[0] - kh + 1
    return 2 * conv.out_channels * out * out * (conv.in_channels // conv.groups) * kh * kw, out


def linear_flops(linear: nn.Linear) -> int:
    return 2 * linear.in_features * linear.out_features


class SqueezeExcite(nn.Module):
    """Channel gate from the block's input: spatial mean -> Linear -> GELU -> Linear -> sigmoid."""

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        hidden = max(1, channels // ratio)  # small widths never drop below one channel
        self.down = nn.Linear(channels, hidden)
        self.up = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(nn.functional.gelu(self.down(x.mean(dim=(2, 3))))))[:, :, None, None]

    def flops(self) -> int:
        return linear_flops(self.down) + linear_flops(self.up)


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

    def flops(self, size: int) -> tuple[int, int]:
        """FLOPs of forward() over one size×size input, and the output's size."""
        total, size = conv_flops(self.conv1, size)
        size //= 2  # max_pool2d(2) floors
        if not self.short:
            total += self.se.flops() + conv_flops(self.conv2, size)[0] + conv_flops(self.conv3, size)[0]
        return total, size


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
        products and convolutions, 2 per multiply-add), summed from the layers' shapes: no forward pass, so it
        costs no time or memory and works whatever device or dtype this network is on."""
        total, size = conv_flops(self.whiten, 32)
        flops, size = conv_flops(self.project, size)
        total += flops
        for group in (self.group1, self.group2, self.group3):
            flops, size = group.flops(size)
            total += flops
        return total + linear_flops(self.head)


def build_net(cfg: TrainConfig, device: torch.device | str = "cpu") -> Net:
    """The network with PyTorch's default init (seeded by the caller), channels_last on `device`."""
    return Net(cfg).to(device=device, memory_format=torch.channels_last)
