"""Training augmentation on one sample of torch tensors (LRRU.md §2.7: flip, colour jitter, rotation ±5°).

Depth maps are sparse: they are rotated with nearest-neighbour sampling so no value is ever interpolated
between a measurement and an empty pixel (which would invent depths).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def hflip(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {k: (v.flip(-1) if v.dim() == 3 else v) for k, v in sample.items()}
    K = sample['K'].clone()
    K[0, 2] = sample['rgb'].shape[-1] - K[0, 2]   # pixel centres at +0.5: cx -> W - cx
    out['K'] = K
    return out


def colour_jitter(rgb: torch.Tensor, rng: np.random.Generator, strength: float = 0.2) -> torch.Tensor:
    """Brightness, contrast and saturation, each scaled by 1 ± strength, on the 0..255 scale."""
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, 3)
    rgb = rgb * brightness
    mean = rgb.mean()
    rgb = (rgb - mean) * contrast + mean
    grey = rgb.mean(dim=0, keepdim=True)
    rgb = (rgb - grey) * saturation + grey
    return rgb.clamp(0, 255)


def rotate(sample: dict[str, torch.Tensor], degrees: float) -> dict[str, torch.Tensor]:
    """Rotate about the image centre; RGB bilinear, depth maps nearest (no mixing of measured and empty)."""
    _, height, width = sample['rgb'].shape
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # affine_grid works in normalised coordinates; correct for the aspect ratio so the rotation is rigid.
    theta = torch.tensor([[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]],
                         dtype=torch.float32).unsqueeze(0)
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)
    out = dict(sample)
    for key, value in sample.items():
        if value.dim() != 3:
            continue
        mode = 'bilinear' if key == 'rgb' else 'nearest'
        out[key] = F.grid_sample(value.unsqueeze(0), grid, mode=mode, padding_mode='zeros',
                                 align_corners=False).squeeze(0)
    out['rgb'] = out['rgb'].clamp(0, 255)   # bilinear weights can overshoot by float rounding
    return out


def augment(sample: dict[str, torch.Tensor], rng: np.random.Generator, flip: bool = True,
            jitter: float = 0.2, max_rotation_deg: float = 5.0) -> dict[str, torch.Tensor]:
    if flip and rng.random() < 0.5:
        sample = hflip(sample)
    if jitter > 0:
        sample = dict(sample, rgb=colour_jitter(sample['rgb'], rng, jitter))
    if max_rotation_deg > 0:
        sample = rotate(sample, float(rng.uniform(-max_rotation_deg, max_rotation_deg)))
    return sample
