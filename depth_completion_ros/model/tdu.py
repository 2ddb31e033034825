"""Target-Dependent Update (LRRU.md §2.5) with a pure-torch modulated deformable 3x3 aggregation.

The authors use a compiled DCNv2 op; here the same computation is written with one ``grid_sample`` call so it
runs on CPU, under autocast, and exports to ONNX (opset >= 16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BasicBlock, conv_bn_relu

NUM_TAPS = 9
CENTRE_TAP = 4


class DeformableAggregation(nn.Module):
    """Modulated deformable 3x3 conv over a 1-channel map (stride 1, padding 1, one deformable group).

    ``out(p) = bias + sum_k w_k * m_k(p) * depth(p + p_k + o_k(p))`` with bilinear sampling that reads zero
    outside the image (as DCNv2 does). One instance (one kernel + bias) is shared by all iterations.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, 1, 3, 3))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, depth: torch.Tensor, offsets: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        # depth: B,1,H,W; offsets: B,18,H,W as (dy, dx) per tap, row-major taps; modulation: B,9,H,W
        height, width = depth.shape[-2:]
        # Work in fp32: depth in metres needs more than fp16's 11-bit mantissa, and grid coordinates too.
        depth = depth.float()
        offsets = offsets.float()
        modulation = modulation.float()
        device = depth.device
        tap_y = torch.tensor([-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0], device=device).view(1, NUM_TAPS, 1, 1)
        tap_x = torch.tensor([-1.0, 0.0, 1.0, -1.0, 0.0, 1.0, -1.0, 0.0, 1.0], device=device).view(1, NUM_TAPS, 1, 1)
        rows = torch.arange(height, device=device, dtype=torch.float32).view(1, 1, -1, 1)
        cols = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, 1, -1)
        sample_y = rows + tap_y + offsets[:, 0::2]           # B,9,H,W pixel coordinates
        sample_x = cols + tap_x + offsets[:, 1::2]
        # align_corners=True: pixel index i <-> normalised 2i/(n-1)-1, i.e. integer offsets hit pixel centres.
        # (n-1) is taken from the index tensors, not Python ints, so exported graphs keep H and W dynamic;
        # the model pads to >= 16 pixels, so n - 1 > 0.
        norm_y = sample_y * (2.0 / rows[..., -1:, :]) - 1.0
        norm_x = sample_x * (2.0 / cols[..., -1:]) - 1.0
        grid = torch.stack([norm_x, norm_y], dim=-1)         # B,9,H,W,2
        grid = grid.flatten(1, 2)                            # B,9H,W,2: all 9 taps in one grid_sample call
        sampled = F.grid_sample(depth, grid, mode='bilinear', padding_mode='zeros', align_corners=True)
        sampled = sampled.unflatten(2, (NUM_TAPS, -1)).squeeze(1)   # B,1,9H,W -> B,9,H,W
        kernel = self.weight.float().reshape(1, NUM_TAPS, 1, 1)
        return (sampled * modulation * kernel).sum(dim=1, keepdim=True) + self.bias.float()   # B,1,H,W


class TDU(nn.Module):
    """One update step: predicts per-pixel kernel weights and offsets from depth + guidance, then aggregates."""

    def __init__(self, guide_channels: int) -> None:
        super().__init__()
        fused = 2 * guide_channels
        self.depth_encoder = nn.Sequential(conv_bn_relu(1, guide_channels),
                                           conv_bn_relu(guide_channels, guide_channels))
        self.guide_encoder = nn.Sequential(conv_bn_relu(guide_channels, guide_channels),
                                           conv_bn_relu(guide_channels, guide_channels))
        self.fuse = nn.Sequential(conv_bn_relu(fused, fused), BasicBlock(fused, fused))
        self.weight_head = nn.Conv2d(fused, NUM_TAPS, 1)
        self.offset_head = nn.Conv2d(fused, 2 * (NUM_TAPS - 1), 1)
        # Start from the regular 3x3 grid (zero offsets), the usual deformable-conv initialisation.
        nn.init.zeros_(self.offset_head.weight)
        nn.init.zeros_(self.offset_head.bias)

    def forward(self, depth: torch.Tensor, guidance: torch.Tensor, aggregation: DeformableAggregation) -> torch.Tensor:
        # depth: B,1,H,W; guidance: B,2bc,H,W
        feature = torch.cat([self.depth_encoder(depth), self.guide_encoder(guidance)], dim=1)   # B,4bc,H,W
        feature = self.fuse(feature)
        weights = torch.sigmoid(self.weight_head(feature))                                     # B,9,H,W
        weights = weights - weights.mean(dim=1, keepdim=True)      # taps sum to 0: a pure residual correction
        neighbour_offsets = self.offset_head(feature)                                          # B,16,H,W
        zero_pair = torch.zeros_like(neighbour_offsets[:, :2])
        offsets = torch.cat([neighbour_offsets[:, :2 * CENTRE_TAP], zero_pair,
                             neighbour_offsets[:, 2 * CENTRE_TAP:]], dim=1)                    # B,18,H,W
        return depth.float() + aggregation(depth, offsets, weights)
