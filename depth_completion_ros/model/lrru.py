"""LRRU: long-short range recurrent updating network (ICCV 2023), written from LRRU.md §2."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone
from .config import RGB_MEAN, RGB_STD, LRRUConfig, get_config
from .tdu import TDU, DeformableAggregation, at_least_fp32


class LRRU(nn.Module):
    """``forward(rgb, sparse, prefill, anchors=None) -> [depth_1/8, depth_1/4, depth_1/2, depth_1]``.

    Inputs are ``B,C,H,W`` of any H, W: RGB float on 0..255, depths in metres (0 = none). The network pads to a
    multiple of 16 internally (replicate for RGB and prefill, zeros for sparse/anchors so padding never looks
    like a measurement) and crops the outputs back. ``anchors`` are the cleaned LiDAR points re-imposed before
    every update (``core.prefill.prefill`` returns them); ``None`` uses ``sparse``.
    """

    def __init__(self, config: LRRUConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        self.updates = nn.ModuleList(TDU(config.guide_channels) for _ in range(config.num_iterations))
        self.aggregation = DeformableAggregation()      # one kernel + bias shared by all iterations
        # Not persistent: constants of the method, kept out of the weights files.
        self.register_buffer('rgb_mean', torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('rgb_std', torch.tensor(RGB_STD).view(1, 3, 1, 1), persistent=False)

    def normalise_rgb(self, rgb: torch.Tensor) -> torch.Tensor:
        """The single place where RGB (0..255) is normalised (LRRU.md §2.1)."""
        return (rgb - self.rgb_mean.to(rgb.dtype)) / self.rgb_std.to(rgb.dtype)

    def forward(self, rgb: torch.Tensor, sparse: torch.Tensor, prefill: torch.Tensor,
                anchors: torch.Tensor | None = None) -> list[torch.Tensor]:
        if anchors is None:
            anchors = sparse
        height, width = sparse.shape[-2:]
        multiple = self.config.input_multiple
        pad_bottom = (-height) % multiple
        pad_right = (-width) % multiple
        padding = (0, pad_right, 0, pad_bottom)
        rgb = self.normalise_rgb(at_least_fp32(rgb))
        # Always pad (a zero pad is a no-op) so an exported graph has no size-dependent branch.
        rgb = F.pad(rgb, padding, mode='replicate')                # B,3,H16,W16
        prefill = F.pad(prefill, padding, mode='replicate')        # B,1,H16,W16
        sparse = F.pad(sparse, padding)                            # zeros: no fake measurements
        anchors = F.pad(anchors, padding)

        guidance = self.backbone(rgb, sparse)                      # 4 x B,2bc,H16,W16
        depth = prefill
        outputs: list[torch.Tensor] = []
        for update, guide in zip(self.updates, guidance, strict=True):
            # Re-impose measured depths, and cut the gradient between iterations (LRRU.md §2.6).
            depth = torch.where(anchors > 0, anchors, depth).detach()
            depth = update(depth, guide, self.aggregation)        # B,1,H16,W16
            outputs.append(depth[..., :height, :width])            # B,1,H,W
        return outputs


def build_model(variant: str | LRRUConfig = 'mini') -> LRRU:
    config = variant if isinstance(variant, LRRUConfig) else get_config(variant)
    return LRRU(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe_variants() -> dict[str, dict]:
    """``{'mini': {'params': N, 'channels': [...], 'base_channels': bc, ...}, ...}`` (built on CPU, cheap)."""
    from .config import REFERENCE_PARAMS, VARIANTS
    result: dict[str, dict] = {}
    for name, config in VARIANTS.items():
        with torch.device('meta'):
            model = LRRU(config)
        result[name] = {
            'params': count_parameters(model),
            'reference_params': REFERENCE_PARAMS[name],
            'channels': config.stage_channels,
            'base_channels': config.base_channels,
            'survival_prob': config.survival_prob,
        }
    return result
