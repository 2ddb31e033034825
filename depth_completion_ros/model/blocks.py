"""Small building blocks shared by the backbone and the update units.

Each block mirrors one of the LRRU authors' building blocks (LRRU.md §2.4-2.5); the mapping of their module
names onto these is ``model/authors.py``.
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 relu: bool = True) -> nn.Sequential:
    """``k x k`` conv (no bias: BN follows) + BN (+ ReLU), 'same' padding."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """``k x k`` conv with bias + ReLU, no normalisation (the depth stem and the update encoders: their inputs
    are depth maps whose statistics BatchNorm would learn from the zeros of the empty pixels)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True),
                         nn.ReLU(inplace=True))


def convt_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 stride-2 transposed conv that exactly doubles H and W, + BN + ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet basic block with stochastic depth.

    Training: the residual branch of each sample survives with probability ``survival_prob`` (unscaled).
    Eval: ``survival_prob * residual + identity`` (the expectation), as in the original stochastic depth.
    ``final_relu=False`` leaves the sum unrectified (the update units' refinement block: its output feeds the
    1x1 weight and offset heads, which need negative values too).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, survival_prob: float = 1.0,
                 final_relu: bool = True) -> None:
        super().__init__()
        if not 0.0 < survival_prob <= 1.0:
            raise ValueError(f'survival_prob must be in (0, 1], got {survival_prob}')
        self.survival_prob = float(survival_prob)
        self.final_relu = final_relu
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        residual = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.survival_prob < 1.0:
            if self.training:
                keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.survival_prob
                residual = residual * keep.to(residual.dtype)
            else:
                residual = residual * self.survival_prob
        out = residual + identity
        return self.relu(out) if self.final_relu else out


def make_stage(in_channels: int, out_channels: int, stride: int, survival_probs: list[float]) -> nn.Sequential:
    """One encoder stage: the first block changes stride/width, the rest keep them."""
    blocks = [BasicBlock(in_channels, out_channels, stride, survival_probs[0])]
    blocks += [BasicBlock(out_channels, out_channels, 1, p) for p in survival_probs[1:]]
    return nn.Sequential(*blocks)


class GuideFusion(nn.Module):
    """RGB injection into the depth stream: concat(depth, rgb) -> 3x3 conv + BN + ReLU (LRRU.md §2.4)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fuse = conv_bn_relu(2 * channels, channels)

    def forward(self, depth_feature: torch.Tensor, rgb_feature: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([depth_feature, rgb_feature], dim=1))
