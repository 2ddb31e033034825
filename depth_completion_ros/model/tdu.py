"""Target-Dependent Update (LRRU.md §2.5) with a pure-torch modulated deformable 3x3 aggregation.

The authors use a compiled DCNv2 op; here the same computation is written with one ``grid_sample`` call so it
runs on CPU, under autocast, and exports to ONNX (opset >= 16).

Layout (why it is fast): the offset and weight heads are 1x1 convolutions whose output channels are ordered so
that, read pixel-major (``channels_last``, which the inference copy uses), they already are what
``grid_sample`` and the tap sum want: ``B,H,W,9,2`` sampling positions as (x, y) and ``B,H,W,9`` weights. The
9 taps of a pixel are one contiguous row of the gather, so there is no ``cat``/``stack``/strided slice over
full-size maps; the regular 3x3 grid in pixel units is built once per size and cached (rebuilt from ``arange``
while tracing/exporting/compiling, so exported graphs keep H and W dynamic).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BasicBlock, conv_relu

NUM_TAPS = 9
CENTRE_TAP = 4
TAP_DY = (-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)      # row-major 3x3 taps
TAP_DX = (-1.0, 0.0, 1.0, -1.0, 0.0, 1.0, -1.0, 0.0, 1.0)


def _offset_channel_order() -> list[int]:
    """For each (tap, x|y) output channel: the offset head's channel (16 = a zero row for the centre tap).

    The head predicts ``(dy, dx)`` per non-centre tap (the trained weights' format); the aggregation wants
    ``(x, y)`` per tap with the centre's offset fixed at zero.
    """
    order = []
    for tap in range(NUM_TAPS):
        if tap == CENTRE_TAP:
            order += [2 * (NUM_TAPS - 1), 2 * (NUM_TAPS - 1)]
        else:
            head_tap = tap if tap < CENTRE_TAP else tap - 1
            order += [2 * head_tap + 1, 2 * head_tap]                 # dx, dy
    return order


OFFSET_CHANNEL_ORDER = _offset_channel_order()


def at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 (autocast) -> fp32; fp32 and fp64 unchanged (fp64 runs check the network against a float64
    reference)."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def pixel_major_conv1x1(feature: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution returning ``B,H,W,C_out`` (the channels of a pixel contiguous, as the taps want them).

    On a channels_last input (the inference copy) it is one matmul over the pixels: no layout change, and not
    torch's slow im2col fallback that a batch-1 1x1 conv takes on one CPU thread. Otherwise (training,
    export: channels-first) the ordinary convolution, viewed pixel-major.
    """
    if feature.is_contiguous(memory_format=torch.channels_last) and not feature.is_contiguous():
        return F.linear(feature.permute(0, 2, 3, 1), weight.flatten(1), bias)
    return F.conv2d(feature, weight, bias).permute(0, 2, 3, 1)


def _dynamic_shapes() -> bool:
    """True while tracing, exporting or compiling: build the grid from the input's size, no Python cache."""
    return (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())


def regular_grid(height: int | torch.Tensor, width: int | torch.Tensor, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positions 1,H,W,9,2, scale (2,))``: pixel coordinates (x, y) of the 9 regular taps of every pixel, and
    the factor ``2/(n-1)`` per axis that maps pixel indices to ``grid_sample``'s [-1, 1] (align_corners=True).

    (n-1) is taken from the index tensors, not Python ints, so traced graphs keep H and W dynamic; the model
    pads to >= 16 pixels, so n - 1 > 0.
    """
    rows = torch.arange(height, device=device, dtype=dtype)
    cols = torch.arange(width, device=device, dtype=dtype)
    taps = torch.tensor([TAP_DX, TAP_DY], device=device, dtype=dtype).t()       # 9,2 as (x, y)
    grid_y, grid_x = torch.meshgrid(rows, cols, indexing='ij')                   # H,W
    positions = (torch.stack([grid_x, grid_y], dim=-1).unsqueeze(2) + taps).contiguous()   # H,W,9,2
    scale = 2.0 / torch.stack([cols[-1], rows[-1]])                             # (2/(W-1), 2/(H-1))
    return positions.unsqueeze(0), scale


class DeformableAggregation(nn.Module):
    """Modulated deformable 3x3 conv over a 1-channel map (stride 1, padding 1, one deformable group).

    ``out(p) = bias + sum_k w_k * m_k(p) * depth(p + p_k + o_k(p))`` with bilinear sampling that reads zero
    outside the image (as DCNv2 does). One instance (one kernel + bias) is shared by all iterations.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, 1, 3, 3))
        self.bias = nn.Parameter(torch.zeros(1))
        self._grids: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}     # (H, W, device) -> regular_grid
        self._workspaces: dict[tuple, torch.Tensor] = {}                      # (B, H, W, device) -> grid buffer

    def grid(self, height: int, width: int, device: torch.device,
             dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        if _dynamic_shapes():
            return regular_grid(height, width, device, dtype)
        key = (int(height), int(width), device) if dtype == torch.float32 else (int(height), int(width), device, dtype)
        if key not in self._grids:
            if len(self._grids) >= 8:              # a node sees one or two sizes; keep memory bounded anyway
                self._grids.clear()
                self._workspaces.clear()
            self._grids[key] = regular_grid(height, width, device, dtype)
        return self._grids[key]

    def _sampling_positions(self, positions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """``positions + offsets``; at inference into one buffer per size, reused by every step and frame: the
        B,H,W,9,2 grid (34 MB at KITTI size) is above glibc's largest mmap threshold, so a fresh one would be
        page-faulted in on every step. (One forward at a time per model, as the node's single worker runs it.)"""
        if torch.is_grad_enabled() or _dynamic_shapes():
            return positions + offsets
        key = (offsets.shape[0], *positions.shape[1:3], offsets.device)
        buffer = self._workspaces.get(key)
        if buffer is None or buffer.dtype != offsets.dtype:
            buffer = self._workspaces[key] = torch.empty(offsets.shape, device=offsets.device, dtype=offsets.dtype)
        return torch.add(positions, offsets, out=buffer)

    def forward(self, depth: torch.Tensor, offsets: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        """``depth`` B,1,H,W; ``offsets`` B,H,W,9,2 pixel offsets as (x, y) per row-major tap;
        ``modulation`` B,H,W,9 -> B,1,H,W."""
        height, width = depth.shape[-2:]
        # Work in fp32: depth in metres needs more than fp16's 11-bit mantissa, and grid coordinates too.
        depth = at_least_fp32(depth)
        positions, scale = self.grid(height, width, depth.device, depth.dtype)
        # The same operations, in the same order, as (pixel + tap + offset) * 2/(n-1) - 1 per axis: identical
        # coordinates, so the bilinear weights do not move at depth edges. In place after the first op.
        grid = self._sampling_positions(positions, offsets.to(depth.dtype)).mul_(scale).sub_(1.0)   # B,H,W,9,2
        sampled = F.grid_sample(depth, grid.flatten(2, 3), mode='bilinear', padding_mode='zeros',
                                align_corners=True)                                  # B,1,H,9W
        sampled = sampled.unflatten(-1, (-1, NUM_TAPS)).squeeze(1)                   # B,H,W,9
        kernel = self.weight.to(depth.dtype).reshape(NUM_TAPS)
        if torch.is_grad_enabled():       # autograd needs the factors: out of place
            products = sampled * modulation.to(depth.dtype) * kernel
        else:                             # inference: no new full-size buffers
            products = sampled.mul_(modulation.to(depth.dtype)).mul_(kernel)
        return (products.sum(dim=-1) + self.bias.to(depth.dtype)).unsqueeze(1)             # B,1,H,W


class TDU(nn.Module):
    """One update step: predicts per-pixel kernel weights and offsets from depth + guidance, then aggregates.

    The authors' ``BasicDepthEncoder`` (LRRU.md §2.5): two 3x3 conv + bias + ReLU encoders (depth 1 -> 2bc -> 2bc,
    guidance 2bc -> 2bc -> 2bc), concatenated, a 3x3 conv + bias + ReLU (4bc) and a basic block without the
    final ReLU, then 1x1 heads with bias: 9 kernel weights (sigmoid, mean removed) and 8 (dy, dx) offsets.
    """

    def __init__(self, guide_channels: int) -> None:
        super().__init__()
        fused = 2 * guide_channels
        self.depth_encoder = nn.Sequential(conv_relu(1, guide_channels), conv_relu(guide_channels, guide_channels))
        self.guide_encoder = nn.Sequential(conv_relu(guide_channels, guide_channels),
                                           conv_relu(guide_channels, guide_channels))
        self.fuse = nn.Sequential(conv_relu(fused, fused), BasicBlock(fused, fused, final_relu=False))
        self.weight_head = nn.Conv2d(fused, NUM_TAPS, 1)
        self.offset_head = nn.Conv2d(fused, 2 * (NUM_TAPS - 1), 1)
        # Start from the regular 3x3 grid (zero offsets), the usual deformable-conv initialisation.
        nn.init.zeros_(self.offset_head.weight)
        nn.init.zeros_(self.offset_head.bias)
        self.register_buffer('offset_order', torch.tensor(OFFSET_CHANNEL_ORDER), persistent=False)

    def tap_offsets(self, feature: torch.Tensor) -> torch.Tensor:
        """B,H,W,9,2 (x, y) offsets: the offset head with its output channels reordered (and a zero centre tap)
        in the weights, so no full-size ``cat`` or strided slice is needed."""
        head = self.offset_head
        weight = torch.cat([head.weight, head.weight.new_zeros(1, *head.weight.shape[1:])])[self.offset_order]
        bias = torch.cat([head.bias, head.bias.new_zeros(1)])[self.offset_order]
        return pixel_major_conv1x1(feature, weight, bias).unflatten(-1, (NUM_TAPS, 2))

    def forward(self, depth: torch.Tensor, guidance: torch.Tensor, aggregation: DeformableAggregation) -> torch.Tensor:
        # depth: B,1,H,W; guidance: B,2bc,H,W
        feature = torch.cat([self.depth_encoder(depth), self.guide_encoder(guidance)], dim=1)   # B,4bc,H,W
        feature = self.fuse(feature)
        weights = torch.sigmoid(pixel_major_conv1x1(feature, self.weight_head.weight, self.weight_head.bias))
        weights = weights - weights.mean(dim=-1, keepdim=True)     # taps sum to 0: a pure residual correction
        return at_least_fp32(depth) + aggregation(depth, self.tap_offsets(feature), weights)
