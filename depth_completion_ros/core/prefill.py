"""Non-learned depth prefill (ip_basic, as LRRU uses it) and LRRU's LiDAR outlier removal, in batched torch.

All functions take ``B,1,H,W`` float tensors in metres (0 = no measurement; ``H,W`` and ``1,H,W`` are accepted
too and the same rank is returned), run on whatever device the input lives on, and contain no per-pixel
Python. Morphology is separable running maxima: full ``k x k`` kernels as two 1-D running maxima computed with
doubling windows (O(log k) passes), the diamond as repeated 3x3 crosses (a diamond of radius r is the r-fold
Minkowski sum of the 3x3 cross), so even the 31x31 fill costs ten ``maximum`` calls. Borders behave like
OpenCV's defaults: dilation/erosion ignore outside pixels, the median replicates the edge and the Gaussian
reflects it (BORDER_REFLECT_101).

``fill_in_fast`` follows LRRU.md §2.2 (a modified ip_basic ``fill_in_fast``):
invert valid depths (d > 0.1 -> max_depth - d), 5x5 diamond dilation, 5x5 closing, 7x7 fill of empty pixels,
top-of-column extension (``extrapolate``), 31x31 fill of empty pixels (unconditional, as in LRRU), 5x5 median,
5x5 Gaussian on valid pixels, re-invert, then (``fill_holes``) a pass that leaves no holes.

Hole pass: LRRU labels connected zero regions (scipy) and fills each with the mean depth of a ring around it.
Labelling is sequential, so here we use a vectorised equivalent in spirit: every hole pixel takes the mean of
the valid pixels in the smallest enclosing cell of a masked 2x2 average pyramid that has any (``push-pull``),
i.e. the mean of the nearest surrounding data, in O(H*W). A map with no valid pixel at all stays 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

VALID_THRESHOLD = 0.1          # ip_basic: depths <= 0.1 m are "empty"
# OpenCV's fixed 5-tap Gaussian (GaussianBlur with ksize 5 and sigma 0 uses this table, not a computed sigma).
_GAUSS5 = (1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16)


# --------------------------------------------------------------------------------------------------- shapes
def _as_batch(depth: torch.Tensor) -> tuple[torch.Tensor, int]:
    if depth.dim() not in (2, 3, 4):
        raise ValueError(f'expected depth of shape (H,W), (1,H,W) or (B,1,H,W); got {tuple(depth.shape)}')
    rank = depth.dim()
    while depth.dim() < 4:
        depth = depth.unsqueeze(0)
    if depth.shape[1] != 1:
        raise ValueError(f'depth must have one channel; got shape {tuple(depth.shape)}')
    return depth.float(), rank


def _restore(depth: torch.Tensor, rank: int) -> torch.Tensor:
    while depth.dim() > rank:
        depth = depth.squeeze(0)
    return depth


# ----------------------------------------------------------------------------------------------- morphology
def _sliding_max(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Centred running max of odd length ``size`` along ``dim`` (outside = ignored), in O(log size) passes.

    ``max_pool2d`` costs O(size) per pixel on CPU (56 ms for the 31x31 fill at 375x1242); doubling windows
    (1, 2, 4, 8, 16) and combining two overlapping ones gives the same result with a handful of ``maximum``s.
    """
    if size <= 1:
        return x
    radius = size // 2
    pad = [0, 0] * (x.dim() - 1 - dim) + [radius, radius]
    running = F.pad(x, pad, value=float('-inf'))                   # window of length 1
    length = running.shape[dim]
    width = 1
    while width * 2 <= size:
        running = torch.maximum(running.narrow(dim, 0, length - width), running.narrow(dim, width, length - width))
        length -= width
        width *= 2
    out_len = x.shape[dim]
    # max over [i, i + size): two windows of ``width`` that overlap and cover it
    return torch.maximum(running.narrow(dim, 0, out_len), running.narrow(dim, size - width, out_len))


def dilate_rect(x: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    """Grey dilation with a full ``height x width`` kernel (odd sizes), separable."""
    width = height if width is None else width
    return _sliding_max(_sliding_max(x, height, 2), width, 3)


def erode_rect(x: torch.Tensor, size: int) -> torch.Tensor:
    return -dilate_rect(-x, size)


def dilate_cross(x: torch.Tensor, size: int) -> torch.Tensor:
    """Dilation with a plus-shaped kernel (one full row and one full column of length ``size``)."""
    return torch.maximum(_sliding_max(x, size, 2), _sliding_max(x, size, 3))


def dilate_diamond(x: torch.Tensor, size: int) -> torch.Tensor:
    """Dilation with the diamond ``|dy| + |dx| <= size // 2`` (e.g. ip_basic's 5x5 diamond for size 5)."""
    for _ in range(size // 2):
        x = dilate_cross(x, 3)
    return x


def diamond_mask(size: int, include_centre: bool = True) -> torch.Tensor:
    radius = size // 2
    offsets = torch.arange(-radius, radius + 1)
    mask = (offsets.view(-1, 1).abs() + offsets.view(1, -1).abs()) <= radius
    if not include_centre:
        mask[radius, radius] = False
    return mask.float()


def median5(x: torch.Tensor) -> torch.Tensor:
    """5x5 median with replicated borders (cv2.medianBlur semantics); 25 samples so the median is exact."""
    batch, _, height, width = x.shape
    patches = F.unfold(F.pad(x, (2, 2, 2, 2), mode='replicate'), 5)        # B,25,H*W
    return patches.median(dim=1).values.view(batch, 1, height, width)


def gaussian5(x: torch.Tensor) -> torch.Tensor:
    """OpenCV ``GaussianBlur(x, (5, 5), 0)``: separable [1 4 6 4 1]/16, reflect-101 borders."""
    kernel = torch.tensor(_GAUSS5, dtype=x.dtype, device=x.device)
    # reflect padding needs at least 3 pixels per side; tiny maps fall back to replicate
    mode = 'reflect' if min(x.shape[-2:]) > 2 else 'replicate'
    x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode=mode), kernel.view(1, 1, 5, 1))
    return F.conv2d(F.pad(x, (2, 2, 0, 0), mode=mode), kernel.view(1, 1, 1, 5))


def extend_top(x: torch.Tensor, mask_only: bool = False) -> torch.Tensor:
    """Copy each column's top-most valid value up to row 0 (columns without any valid pixel are untouched).

    With ``mask_only`` return the boolean mask of pixels *below or at* each column's top-most valid pixel
    (all True for empty columns), which ip_basic's multiscale variant uses when not extrapolating.
    """
    valid = x > VALID_THRESHOLD
    seen = valid.cumsum(dim=2) > 0                                  # True from the top-most valid row down
    column_has_valid = valid.any(dim=2, keepdim=True)
    if mask_only:
        return seen | ~column_has_valid
    top_row = valid.float().argmax(dim=2, keepdim=True)             # B,1,1,W
    top_value = torch.gather(x, 2, top_row)
    above = ~seen & column_has_valid
    return torch.where(above, top_value.expand_as(x), x)


def fill_remaining_holes(depth: torch.Tensor) -> torch.Tensor:
    """Give every pixel <= 0.1 the mean of the valid pixels in the smallest surrounding pyramid cell that has any.

    A masked "push-pull" pyramid: 2x2 averages of (value * valid) and valid are built until every cell has
    data, then each level's holes take the mean from the next coarser level. Cost is O(H*W) in ~log2(size)
    passes; a map without any valid pixel stays 0.
    """
    valid = (depth > VALID_THRESHOLD).float()
    if bool(valid.all()):
        return depth
    sums = [depth * valid]
    counts = [valid]
    while min(sums[-1].shape[-2:]) > 1 and bool((counts[-1] == 0).any()):
        sums.append(F.avg_pool2d(sums[-1], 2, ceil_mode=True))
        counts.append(F.avg_pool2d(counts[-1], 2, ceil_mode=True))
    filled = torch.zeros_like(sums[-1])
    for level_sum, level_count in zip(reversed(sums), reversed(counts), strict=True):
        coarse = F.interpolate(filled, size=level_sum.shape[-2:], mode='nearest')
        filled = torch.where(level_count > 0, level_sum / level_count.clamp(min=1e-12), coarse)
    return torch.where(valid > 0, depth, filled)


def _replace(target: torch.Tensor, source: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    return torch.where(where, source, target)


# -------------------------------------------------------------------------------------------------- prefill
def fill_in_fast(sparse: torch.Tensor, max_depth: float = 100.0, extrapolate: bool = True, blur: str = 'gaussian',
                 fill_holes: bool = True) -> torch.Tensor:
    """ip_basic ``fill_in_fast`` as modified by LRRU (module docstring). Returns dense metres, same shape."""
    if blur not in ('gaussian', 'none'):
        raise ValueError(f"blur must be 'gaussian' or 'none', got {blur!r}")
    depth, rank = _as_batch(sparse)
    valid = depth > VALID_THRESHOLD
    # Invert so that max-filters prefer *near* points (foreground wins at depth edges).
    x = torch.where(valid, max_depth - depth, torch.zeros_like(depth))
    x = dilate_diamond(x, 5)
    x = erode_rect(dilate_rect(x, 5), 5)                              # 5x5 closing
    x = _replace(x, dilate_rect(x, 7), x < VALID_THRESHOLD)
    if extrapolate:
        x = extend_top(x)
    x = _replace(x, dilate_rect(x, 31), x < VALID_THRESHOLD)         # unconditional in LRRU
    x = median5(x)
    if blur == 'gaussian':
        x = _replace(x, gaussian5(x), x > VALID_THRESHOLD)
    x = torch.where(x > VALID_THRESHOLD, max_depth - x, torch.zeros_like(x))
    if fill_holes:
        x = fill_remaining_holes(x)
    return _restore(x, rank)


def fill_in_multiscale(sparse: torch.Tensor, max_depth: float = 100.0, extrapolate: bool = True,
                       blur: str = 'gaussian', fill_holes: bool = True,
                       near_far_bins: tuple[float, float] = (15.0, 30.0)) -> torch.Tensor:
    """ip_basic multi-scale fill: depth-binned cross dilations (7 near, 5 mid, 3 far), then masked fills."""
    if blur not in ('gaussian', 'none'):
        raise ValueError(f"blur must be 'gaussian' or 'none', got {blur!r}")
    depth, rank = _as_batch(sparse)
    near_limit, far_limit = near_far_bins
    valid = depth > VALID_THRESHOLD
    near = valid & (depth <= near_limit)
    mid = (depth > near_limit) & (depth <= far_limit)
    far = depth > far_limit
    inverted = torch.where(valid, max_depth - depth, torch.zeros_like(depth))
    zeros = torch.zeros_like(inverted)
    x = inverted
    # Far first, then nearer bins overwrite (nearer surfaces occlude farther ones).
    for bin_mask, size in ((far, 3), (mid, 5), (near, 7)):
        dilated = dilate_cross(torch.where(bin_mask, inverted, zeros), size)
        x = _replace(x, dilated, dilated > VALID_THRESHOLD)
    x = erode_rect(dilate_rect(x, 5), 5)                              # 5x5 closing
    x = _replace(x, median5(x), x > VALID_THRESHOLD)
    below_top = extend_top(x, mask_only=True)
    x = _replace(x, dilate_rect(x, 9), (x <= VALID_THRESHOLD) & below_top)
    if extrapolate:
        x = extend_top(x)
        fill_mask = torch.ones_like(x, dtype=torch.bool)
    else:
        fill_mask = extend_top(x, mask_only=True)
    for _ in range(6):                                                 # large holes: masked 5x5 dilations
        x = _replace(x, dilate_rect(x, 5), (x < VALID_THRESHOLD) & fill_mask)
    x = _replace(x, median5(x), (x > VALID_THRESHOLD) & fill_mask)
    if blur == 'gaussian':
        x = _replace(x, gaussian5(x), (x > VALID_THRESHOLD) & fill_mask)
    x = torch.where(x > VALID_THRESHOLD, max_depth - x, torch.zeros_like(x))
    if fill_holes:
        x = fill_remaining_holes(x)
    return _restore(x, rank)


# ------------------------------------------------------------------------------------------ outlier removal
def remove_outliers(sparse: torch.Tensor, threshold: float = 1.0,
                    windows: tuple[int, ...] = (7, 9, 13)) -> torch.Tensor:
    """LRRU ``dep_clear`` (LRRU.md §2.3): drop points behind their neighbourhood.

    A point is removed (set to 0) when it exceeds the mean of the valid neighbours (centre excluded) by more than
    ``threshold`` metres in any of the diamond windows. Typical cause: LiDAR points of a far surface seen through
    the camera's view of a nearer object (parallax between LiDAR and camera).
    """
    depth, rank = _as_batch(sparse)
    valid = (depth > 0).float()
    values = depth * valid
    outlier = torch.zeros_like(depth, dtype=torch.bool)
    for size in windows:
        kernel = diamond_mask(size, include_centre=False).to(depth.device, depth.dtype).view(1, 1, size, size)
        total = F.conv2d(values, kernel, padding=size // 2)
        count = F.conv2d(valid, kernel, padding=size // 2)
        mean = total / count.clamp(min=1.0)
        outlier |= (valid > 0) & (count > 0) & (depth - mean > threshold)
    return _restore(torch.where(outlier, torch.zeros_like(depth), values), rank)


PREFILL_METHODS = {'fast': fill_in_fast, 'multiscale': fill_in_multiscale}


def prefill(sparse: torch.Tensor, method: str = 'fast') -> tuple[torch.Tensor, torch.Tensor]:
    """``(dense prefill, anchors)``: the prefill is computed from the raw sparse map (as LRRU does); anchors are
    the outlier-cleaned points that the network re-imposes before every update."""
    if method not in PREFILL_METHODS:
        raise ValueError(f'unknown prefill method {method!r}; choose from {", ".join(PREFILL_METHODS)}')
    dense = PREFILL_METHODS[method](sparse)
    return dense, remove_outliers(sparse)
