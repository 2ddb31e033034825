"""Cross-guided two-stream encoder, decoder with additive skips and the four guidance features (LRRU.md §2.4).

Module for module the authors' network (``model/authors.py`` maps their names onto these):
two ResNet-like streams (RGB, raw sparse depth) of 5 stages x 2 stochastic-depth blocks, the RGB feature fused
into the depth stream after stages 1-4, the streams summed at 1/16, a transposed-conv decoder with the fused
features as additive skips, and the guidance of each update step taken from one decoder scale.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import GuideFusion, conv_bn_relu, conv_relu, convt_bn_relu, make_stage
from .config import LRRUConfig

STAGE_STRIDES = (1, 2, 2, 2, 2)      # scales 1, 1/2, 1/4, 1/8, 1/16
BLOCKS_PER_STAGE = 2


def upsampling_head(in_channels: int, num_upsamples: int, out_channels: int) -> nn.Sequential:
    """Brings a decoder feature at scale 1/2^k to full resolution with ``k`` transposed convs (+ BN + ReLU).

    Widths halve on the way and the last one outputs ``out_channels`` (the authors' ``upproj``: from 1/8,
    16bc -> 8bc -> 4bc -> 2bc; from 1/4, 16bc -> 8bc -> 2bc; from 1/2, 8bc -> 2bc). Nothing follows.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for step in range(num_upsamples):
        nxt = out_channels if step == num_upsamples - 1 else channels // 2
        layers.append(convt_bn_relu(channels, nxt))
        channels = nxt
    return nn.Sequential(*layers)


class Backbone(nn.Module):
    """Returns the 4 guidance features (B, 2bc, H, W), in TDU order: from the 1/8, 1/4, 1/2 and 1 scales."""

    def __init__(self, config: LRRUConfig) -> None:
        super().__init__()
        bc = config.base_channels
        widths = config.stage_channels
        stem_width = 2 * bc
        self.rgb_stem = conv_bn_relu(3, stem_width, 5)
        # The depth stem sees the raw sparse map; BN would be dominated by the zeros, so conv + bias + ReLU.
        self.depth_stem = conv_relu(1, stem_width, 5)

        # Survival probability decays linearly from 1 (first block) to config.survival_prob (last block).
        num_blocks = len(widths) * BLOCKS_PER_STAGE
        step = (1.0 - config.survival_prob) / max(num_blocks - 1, 1)
        probs = [1.0 - step * index for index in range(num_blocks)]
        self.rgb_stages = nn.ModuleList()
        self.depth_stages = nn.ModuleList()
        in_width = stem_width
        for index, (width, stride) in enumerate(zip(widths, STAGE_STRIDES, strict=True)):
            stage_probs = probs[index * BLOCKS_PER_STAGE:(index + 1) * BLOCKS_PER_STAGE]
            self.rgb_stages.append(make_stage(in_width, width, stride, stage_probs))
            self.depth_stages.append(make_stage(in_width, width, stride, stage_probs))
            in_width = width
        self.guides = nn.ModuleList(GuideFusion(width) for width in widths[:-1])

        # Decoder 1/16 -> 1/8 -> 1/4 -> 1/2 -> 1; widths follow the skips.
        self.decoder = nn.ModuleList(convt_bn_relu(widths[i + 1], widths[i]) for i in reversed(range(len(widths) - 1)))
        # Guidance of update steps 1-3: the decoder outputs at 1/8, 1/4, 1/2 upsampled (3, 2, 1 transposed convs).
        self.guidance_heads = nn.ModuleList(
            upsampling_head(widths[scale], scale, config.guide_channels) for scale in (3, 2, 1))
        # Guidance of step 4: the full-resolution decoder output narrowed to 2bc, plus the depth stem.
        self.full_resolution_guide = conv_bn_relu(widths[0], config.guide_channels)

    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor) -> list[torch.Tensor]:
        # rgb: B,3,H,W normalised; sparse: B,1,H,W metres; H, W multiples of 16
        rgb_feature = self.rgb_stem(rgb)                 # B,2bc,H,W
        depth_stem = self.depth_stem(sparse)             # B,2bc,H,W
        depth_feature = depth_stem
        skips: list[torch.Tensor] = []
        for index, (rgb_stage, depth_stage) in enumerate(zip(self.rgb_stages, self.depth_stages, strict=True)):
            rgb_feature = rgb_stage(rgb_feature)         # B,C_i,H/2^i,W/2^i
            depth_feature = depth_stage(depth_feature)
            if index < len(self.guides):
                depth_feature = self.guides[index](depth_feature, rgb_feature)
                skips.append(depth_feature)
        feature = depth_feature + rgb_feature            # bottleneck at 1/16: B,16bc,H/16,W/16

        decoded: list[torch.Tensor] = []
        for up, skip in zip(self.decoder, reversed(skips), strict=True):
            feature = up(feature) + skip                 # 1/8 (16bc), 1/4 (16bc), 1/2 (8bc), 1 (4bc)
            decoded.append(feature)
        guidance = [head(feat) for head, feat in zip(self.guidance_heads, decoded[:-1], strict=True)]
        guidance.append(self.full_resolution_guide(decoded[-1]) + depth_stem)
        return guidance                                  # 4 x B,2bc,H,W
