"""Photometric self-supervision from consecutive frames (issue 19): view synthesis and its losses, in torch.

A target frame's predicted depth, the camera motion to a neighbouring frame and both cameras' intrinsics say
where every target pixel lies in the neighbour; sampling the neighbour there (``grid_sample``, bilinear)
re-synthesises the target. Where depth and motion are right the synthesised image matches the target, so the
mismatch trains depth without any depth ground truth (Monodepth2; unsupervised depth completion adds the
sparse points, as KBNet does). The frames and camera motions come from ``data.sequence``. Pieces:

- :func:`warp`: neighbour image sampled at the target pixels' re-projections (+ validity, depth there).
- :func:`photometric_error`: per pixel ``0.85 (1 - SSIM) / 2 + 0.15 L1`` (3x3 SSIM, Monodepth2's weights).
- :func:`reprojection_loss`: minimum over neighbours per pixel (a pixel occluded in one neighbour is usually
  visible in the other), pixels where an *unwarped* neighbour already matches better masked out (auto-mask:
  objects moving with the camera, a standing vehicle, textureless regions).
- :func:`smoothness_loss`: edge-aware smoothness of the mean-normalised inverse depth.
- :func:`self_supervised_loss`: the weighted sum used by ``depth-completion train --self-supervised``.

Geometry reuses ``core.projection`` (``backproject`` for pixels -> points, ``pixel_coordinates`` for points ->
sub-pixel coordinates, both torch-capable and distortion-aware), with its convention that integer pixel
coordinates are pixel centres, which is ``grid_sample``'s ``align_corners=True``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import backproject, pixel_coordinates
from depth_completion_ros.core.transforms import RigidTransform

SSIM_WEIGHT = 0.85               # Monodepth2: 0.85 (1 - SSIM) / 2 + 0.15 L1
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2
MIN_DEPTH_M = 1e-3               # depths are clamped here so no division makes inf/NaN (NaN gradients)
UNSEEN = 1e3                     # photometric error of a pixel a neighbour does not see (loses every minimum)


def pinhole_camera(K: Any, height: int, width: int) -> CameraModel:
    """A distortion-free camera of a 3x3 intrinsics tensor/array (the rectified images of the sequences)."""
    k = np.asarray(K.detach().cpu() if isinstance(K, torch.Tensor) else K, np.float64)
    return CameraModel.from_intrinsics(k[0, 0], k[1, 1], k[0, 2], k[1, 2], width, height)


# ------------------------------------------------------------------------------------------------------ warp
@dataclass
class Warped:
    image: torch.Tensor   # B,C,H,W: the source image sampled at the target pixels' re-projections
    valid: torch.Tensor   # B,1,H,W bool: the re-projection lies in front of the source camera and in its image
    depth: torch.Tensor   # B,1,H,W: depth of the target pixel's 3-D point in the source camera (occlusion tests)


def warp(source: torch.Tensor, depth: torch.Tensor, K_target: torch.Tensor, K_source: torch.Tensor,
         T_source_target: torch.Tensor) -> Warped:
    """Re-synthesise the target view from ``source`` (B,C,Hs,Ws; any size, e.g. the full frame around a crop).

    ``depth`` B,1,H,W (target camera, m; differentiable), ``K_*`` B,3,3, ``T_source_target`` B,4,4 maps
    target-camera points into the source camera. One back-projection / transform / projection per batch
    item (each item has its own cameras), then one batched ``grid_sample``."""
    batch, _, height, width = depth.shape
    source_h, source_w = source.shape[-2:]
    grids, fronts, valids = [], [], []
    for b in range(batch):
        camera_t = pinhole_camera(K_target[b], height, width)
        camera_s = pinhole_camera(K_source[b], source_h, source_w)
        points = backproject(depth[b, 0].clamp(min=MIN_DEPTH_M), camera_t).reshape(-1, 3)
        T = RigidTransform.from_matrix(T_source_target[b].detach().cpu().double().numpy())
        moved = T.apply(points)
        z = moved[:, 2]
        # Points at or behind the source camera have no image there; clamping keeps the division finite.
        safe = torch.cat([moved[:, :2], z.clamp(min=MIN_DEPTH_M)[:, None]], dim=1)
        u, v, ok = pixel_coordinates(safe, camera_s)
        # No depth (a crop without any LiDAR point leaves the prefill at 0) = nothing to warp.
        ok = (ok & (depth[b, 0].reshape(-1) > MIN_DEPTH_M) & (z > MIN_DEPTH_M)
              & (u >= 0) & (u <= source_w - 1) & (v >= 0) & (v <= source_h - 1))
        grid = torch.stack([2 * u / max(source_w - 1, 1) - 1, 2 * v / max(source_h - 1, 1) - 1], dim=-1)
        grids.append(grid.reshape(height, width, 2))
        fronts.append(z.reshape(1, height, width))
        valids.append(ok.reshape(1, height, width))
    grid = torch.stack(grids).to(source.dtype)
    image = F.grid_sample(source, grid, mode='bilinear', padding_mode='border', align_corners=True)
    return Warped(image=image, valid=torch.stack(valids), depth=torch.stack(fronts))


# ---------------------------------------------------------------------------------------------------- errors
def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (B,C,H,W) over 3x3 windows (reflection-padded), as Monodepth2 uses it."""
    channels = x.shape[1]
    stacked = F.pad(torch.cat([x, y, x * x, y * y, x * y], dim=1), (1, 1, 1, 1), mode='reflect')
    # The 3x3 means as one depthwise convolution: ten times faster than avg_pool2d on CPU (measured, 1 thread).
    box = torch.full((5 * channels, 1, 3, 3), 1.0 / 9.0, dtype=x.dtype, device=x.device)
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = F.conv2d(stacked, box, groups=5 * channels).split(channels, dim=1)
    sigma_x = mean_xx - mu_x ** 2
    sigma_y = mean_yy - mu_y ** 2
    sigma_xy = mean_xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return numerator / denominator


def photometric_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """B,1,H,W: ``0.85 (1 - SSIM) / 2 + 0.15 |prediction - target|``, channel mean; images in 0..1."""
    structural = ((1 - ssim(prediction, target)) / 2).clamp(0, 1).mean(1, keepdim=True)
    absolute = (prediction - target).abs().mean(1, keepdim=True)
    return SSIM_WEIGHT * structural + (1 - SSIM_WEIGHT) * absolute


@dataclass
class Reprojection:
    loss: torch.Tensor        # scalar: mean of the per-pixel minimum over the used pixels
    error: torch.Tensor       # B,1,H,W: the per-pixel minimum over neighbours (UNSEEN where none sees it)
    used: torch.Tensor        # B,1,H,W bool: seen by a neighbour and not auto-masked
    best: torch.Tensor        # B,1,H,W long: which neighbour gave the minimum


def identity_error(target: torch.Tensor, unwarped: Sequence[torch.Tensor]) -> torch.Tensor:
    """B,1,H,W: the best photometric error of the neighbours without any warp (same crop as the target)."""
    return torch.stack([photometric_error(u, target) for u in unwarped]).min(dim=0).values


def reprojection_loss(target: torch.Tensor, warped: Sequence[Warped], identity: torch.Tensor | None = None
                      ) -> Reprojection:
    """Minimum reprojection error over neighbours with Monodepth2's auto-mask.

    ``identity``: :func:`identity_error`; a pixel whose best unwarped error is lower than (or equal to) its
    best warped error is not used: it moves with the camera, or nothing there constrains depth. ``None`` = no
    auto-mask."""
    errors = torch.stack([torch.where(w.valid, photometric_error(w.image, target), torch.full_like(w.depth, UNSEEN))
                          for w in warped])
    error, best = errors.min(dim=0)
    used = error < UNSEEN
    if identity is not None:
        used = used & (error < identity)
    count = used.sum().clamp(min=1)
    loss = torch.where(used, error, torch.zeros_like(error)).sum() / count
    return Reprojection(loss=loss, error=error, used=used, best=best)


def smoothness_loss(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware smoothness of the inverse depth divided by its per-image mean (so the term does not favour
    shrinking depth): ``|d_x d*| exp(-|d_x I|) + |d_y d*| exp(-|d_y I|)``, image gradients as channel means."""
    inverse = 1.0 / depth.clamp(min=MIN_DEPTH_M)
    inverse = inverse / inverse.mean(dim=(2, 3), keepdim=True).clamp(min=1e-7)
    grad_x = (inverse[..., :, 1:] - inverse[..., :, :-1]).abs()
    grad_y = (inverse[..., 1:, :] - inverse[..., :-1, :]).abs()
    edge_x = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    edge_y = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (grad_x * torch.exp(-edge_x)).mean() + (grad_y * torch.exp(-edge_y)).mean()


# ----------------------------------------------------------------------------------------------- the training
@dataclass
class LossWeights:
    photometric: float = 1.0
    sparse: float = 1.0      # L1 (+ l2 x L2) on the hidden measured points (lrru_loss)
    smoothness: float = 1e-3  # Monodepth2's weight


def unwarped_crops(batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Each neighbour cut at the target crop's window (the identity warp), one B,3,h,w tensor per neighbour."""
    height, width = batch['rgb'].shape[-2:]
    crops = []
    for s in range(batch['neighbours'].shape[1]):
        crops.append(torch.stack([batch['neighbours'][b, s, :, y0:y0 + height, x0:x0 + width]
                                  for b, (y0, x0) in enumerate(batch['offset'].tolist())]))
    return crops


def self_supervised_loss(outputs: Sequence[torch.Tensor], batch: dict[str, torch.Tensor], weights: LossWeights,
                         l2_weight: float = 0.0, gamma: float = 0.8
                         ) -> tuple[torch.Tensor, dict[str, float], dict[str, torch.Tensor]]:
    """``(total, {term: value}, panel)`` for LRRU's iteration outputs (first -> last) and a sequence batch
    (``training.self_supervised.SequenceDataset``: ``rgb`` 0..255, ``gt`` = hidden points, ``neighbours``
    B,S,3,H,W full frames, ``T`` B,S,4,4 source <- target, ``K``, ``K_neighbour``, ``offset``). Each term value
    is summed over the outputs with the iteration weights, as it enters the total (before the term weight).

    Every output gets the three terms, weighted like LRRU's own loss (later iterations more): LRRU cuts the
    gradient between iterations, so each update step learns only from the loss on its own output."""
    from depth_completion_ros.model.loss import iteration_weights, masked_l1_l2

    target = batch['rgb'] / 255.0
    sources = batch['neighbours'] / 255.0
    identity = identity_error(target, [crop / 255.0 for crop in unwarped_crops(batch)])
    totals = {'photometric': 0.0, 'sparse': 0.0, 'smoothness': 0.0}
    loss: torch.Tensor = torch.zeros((), device=target.device)
    reprojection: Reprojection | None = None
    warped: list[Warped] = []
    for w, depth in zip(iteration_weights(len(outputs), gamma), outputs, strict=True):
        depth = depth.float()
        warped = [warp(sources[:, s], depth, batch['K'], batch['K_neighbour'], batch['T'][:, s])
                  for s in range(sources.shape[1])]
        reprojection = reprojection_loss(target, warped, identity)
        terms = {'photometric': reprojection.loss, 'sparse': masked_l1_l2(depth, batch['gt'].float(), l2_weight),
                 'smoothness': smoothness_loss(depth, target)}
        loss = loss + w * sum(getattr(weights, name) * value for name, value in terms.items())
        for name, value in terms.items():
            totals[name] += w * float(value.detach())
    assert reprojection is not None
    # Panel of the last output: the target, its best neighbour re-synthesised, and the error used.
    best = reprojection.best
    chosen = torch.zeros_like(target)
    for s, item in enumerate(warped):
        chosen = torch.where(best == s, item.image, chosen)
    panel = {'target': target.detach(), 'warped': chosen.detach(),
             'error': torch.where(reprojection.used, reprojection.error, torch.zeros_like(reprojection.error)).detach(),
             'depth': outputs[-1].detach().float()}
    return loss, totals, panel


def save_sample_panel(panel: dict[str, torch.Tensor], path: str | Path, title: str = '') -> None:
    """PNG of the first batch item: target | re-synthesised best neighbour | error used | predicted depth."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    target = panel['target'][0].permute(1, 2, 0).cpu().numpy().clip(0, 1)
    warped = panel['warped'][0].permute(1, 2, 0).cpu().numpy().clip(0, 1)
    error = panel['error'][0, 0].cpu().numpy()
    depth = panel['depth'][0, 0].cpu().numpy()
    # A narrow column for the colour bars keeps the four images the same width, one above the other.
    fig, axes = plt.subplots(4, 2, figsize=(8, 8.5), gridspec_kw={'width_ratios': [40, 1]})
    for row, (image, name, options) in enumerate((
            (target, 'target', {}), (warped, 'best neighbour warped into the target', {}),
            (error, 'photometric error used (black: masked / unseen)',
             {'cmap': 'magma', 'vmin': 0.0, 'vmax': max(float(np.percentile(error, 99)), 1e-3)}),
            (depth, 'predicted depth (m)', {'cmap': 'turbo_r', 'vmin': 0.0,
                                            'vmax': max(float(np.percentile(depth, 99)), 1e-3)}))):
        ax, bar = axes[row]
        shown = ax.imshow(image, aspect='auto', **options)
        ax.set_title(name, fontsize=9)
        ax.axis('off')
        if image.ndim == 2:
            fig.colorbar(shown, cax=bar)
        else:
            bar.axis('off')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
