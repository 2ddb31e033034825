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

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .cpu_runtime import spare_core_worker
from .interpolation import depth_and_valid, interpolate

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


# Exact 5x5 median without sorting 25 values per pixel (``unfold`` + ``median`` costs ~150 ms at 375x1242 on
# one CPU thread). Only ``minimum``/``maximum`` of whole shifted views are used, so every output is one of the
# inputs, bit for bit, on any device:
#   1. every vertical 5-window is sorted once for the whole image (shared by the 5 horizontally adjacent
#      outputs that use it) -> 5 rank images;
#   2. each rank image is sorted along its horizontal 5-window, but only the ranks needed below are formed.
#      The 5x5 matrix M[i][j] (i = vertical rank, j = horizontal rank) is then sorted along rows and columns
#      (sorting rows keeps sorted columns sorted), so at least (i+1)(j+1) samples are <= M[i][j] and at least
#      (5-i)(5-j) are >= it: the 6 entries with (i+1)(j+1) > 13 rank >= 14, the 6 with (5-i)(5-j) > 13 rank
#      <= 12, and the median (rank 13) is the median of the 13 entries of the band in between;
#   3. that median is selected by a comparator network: Batcher's odd-even merge sort on 16 wires, restricted
#      to 13, pruned to the comparators that reach the middle output, then further pruned (greedily, checked
#      exhaustively with the 0-1 principle on all 252 row/column-sorted 0-1 matrices) using the known order
#      of the band. ``test/test_prefill.py`` re-checks the network and compares with ``unfold`` + ``median``.
# Sliding 5-window ranks (steps 1 and 2) share work between neighbouring windows: sorted pairs (x_k, x_k+1)
# are formed once, two pairs two apart merge into the sorted 4-window, and rank r of the 5-window is then
# ``max(q[r-1], min(q[r], x_k+4))``. ~100 elementwise min/max passes in all.
_MEDIAN_BAND = ((0, 3), (3, 1), (1, 2), (1, 3), (2, 1), (4, 1), (2, 3), (1, 4), (3, 2), (2, 2), (3, 0), (4, 0), (0, 4))
# (low wire, high wire): after the comparator the low wire holds the minimum. The median ends on wire 6.
_MEDIAN13_NETWORK = ((8, 9), (1, 3), (8, 10), (9, 11), (1, 2), (9, 10), (0, 4), (3, 7), (2, 4), (3, 5), (10, 12),
                     (3, 4), (9, 10), (11, 12), (3, 11), (4, 8), (5, 9), (6, 10), (3, 5), (6, 8), (5, 6))
_MEDIAN13_OUTPUT = 6


def _pruned_network(network: tuple[tuple[int, int], ...], output: int) -> list[tuple[int, int, bool, bool]]:
    """``(low, high, need_min, need_max)`` per comparator that can reach wire ``output`` (others dropped)."""
    needed = {output}
    kept: list[tuple[int, int, bool, bool]] = []
    for low, high in reversed(network):
        need_min, need_max = low in needed, high in needed
        if need_min or need_max:
            kept.append((low, high, need_min, need_max))
            needed |= {low, high}
    return kept[::-1]


_MEDIAN13_STEPS = _pruned_network(_MEDIAN13_NETWORK, _MEDIAN13_OUTPUT)


def _select(wires: list[torch.Tensor], steps: list[tuple[int, int, bool, bool]], output: int) -> torch.Tensor:
    wires = list(wires)
    for low, high, need_min, need_max in steps:
        a, b = wires[low], wires[high]
        if need_min:
            wires[low] = torch.minimum(a, b)
        if need_max:
            wires[high] = torch.maximum(a, b)
    return wires[output]


def _window5_ranks(x: torch.Tensor, dim: int, ranks: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Ranks (0 = smallest) of every sliding 5-window along ``dim``; outputs are 4 shorter than ``x``."""
    length = x.shape[dim]
    n = length - 4
    first, second = x.narrow(dim, 0, length - 1), x.narrow(dim, 1, length - 1)
    pair_lo, pair_hi = torch.minimum(first, second), torch.maximum(first, second)     # sorted (x_k, x_k+1)
    lo_a, lo_b = pair_lo.narrow(dim, 0, n), pair_lo.narrow(dim, 2, n)
    hi_a, hi_b = pair_hi.narrow(dim, 0, n), pair_hi.narrow(dim, 2, n)
    need_q = set()
    for rank in ranks:
        need_q |= {rank - 1, rank} & {0, 1, 2, 3}
    q: dict[int, torch.Tensor] = {}                                   # the sorted 4-window x_k .. x_k+3
    if 0 in need_q:
        q[0] = torch.minimum(lo_a, lo_b)
    if 3 in need_q:
        q[3] = torch.maximum(hi_a, hi_b)
    if need_q & {1, 2}:
        middle_lo, middle_hi = torch.maximum(lo_a, lo_b), torch.minimum(hi_a, hi_b)
        if 1 in need_q:
            q[1] = torch.minimum(middle_lo, middle_hi)
        if 2 in need_q:
            q[2] = torch.maximum(middle_lo, middle_hi)
    last = x.narrow(dim, 4, n)
    out: dict[int, torch.Tensor] = {}
    for rank in ranks:
        if rank == 0:
            out[rank] = torch.minimum(q[0], last)
        elif rank == 4:
            out[rank] = torch.maximum(q[3], last)
        else:
            out[rank] = torch.maximum(q[rank - 1], torch.minimum(q[rank], last))
    return out


_MEDIAN_LEVELS: dict[int, tuple[int, ...]] = {}
for _level, _rank in _MEDIAN_BAND:
    _MEDIAN_LEVELS[_level] = tuple(sorted(_MEDIAN_LEVELS.get(_level, ()) + (_rank,)))
# On CPU the image is processed in horizontal stripes of about this many elements per pass, so the ~100 passes
# run out of cache (2x faster at 375x1242 than whole-image passes). CUDA takes the whole image at once.
_MEDIAN_STRIPE_ELEMENTS = 1 << 15


def _median5_padded(padded: torch.Tensor) -> torch.Tensor:
    """Median of every 5x5 window of an already padded ``B,1,H+4,W+4`` map -> ``B,1,H,W``."""
    vertical = _window5_ranks(padded, 2, (0, 1, 2, 3, 4))                # 5 x (B,1,H,W+4)
    matrix: dict[tuple[int, int], torch.Tensor] = {}
    for level, ranks in _MEDIAN_LEVELS.items():
        for rank, value in _window5_ranks(vertical[level], 3, ranks).items():
            matrix[level, rank] = value
    return _select([matrix[cell] for cell in _MEDIAN_BAND], _MEDIAN13_STEPS, _MEDIAN13_OUTPUT)


def median5(x: torch.Tensor) -> torch.Tensor:
    """5x5 median with replicated borders (cv2.medianBlur semantics), exact (see the comment block above)."""
    padded = F.pad(x, (2, 2, 2, 2), mode='replicate')
    height = x.shape[2]
    stripe = max(4, _MEDIAN_STRIPE_ELEMENTS // max(1, x.shape[0] * padded.shape[3]))
    if x.device.type != 'cpu' or stripe >= height:
        return _median5_padded(padded)
    out = torch.empty_like(x)
    for top in range(0, height, stripe):
        rows = min(stripe, height - top)
        out[:, :, top:top + rows] = _median5_padded(padded.narrow(2, top, rows + 4))
    return out


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


def _halve_numpy(x: np.ndarray) -> np.ndarray:
    """``F.avg_pool2d(x, 2, ceil_mode=True)`` of an ``HxW`` float32 map, bit for bit: each cell's in-image taps
    summed in its order (top-left, top-right, bottom-left, bottom-right) and scaled by 1/4, 1/2 or 1 for 4, 2 or
    1 taps (a product by a power of two rounds like the division)."""
    height, width = x.shape
    rows, cols = height // 2, width // 2                              # cells with both rows / both columns
    total = x[0::2, 0::2].copy()
    total[:, :cols] += x[0::2, 1::2]
    total[:rows] += x[1::2, 0::2]
    total[:rows, :cols] += x[1::2, 1::2]
    total[:rows, :cols] *= np.float32(0.25)
    total[rows:, :cols] *= np.float32(0.5)                           # the last row of an odd height
    total[:rows, cols:] *= np.float32(0.5)                           # the last column of an odd width
    return total


def fill_remaining_holes_numpy(depth: np.ndarray) -> np.ndarray:
    """:func:`fill_remaining_holes` of one ``HxW`` float32 map on the CPU, with identical output (test).

    The same pyramid, but a hole pixel's cell is only read at the hole pixels, and only up to the level where the
    last of them is resolved: after ip_basic's 31x31 fill the holes are a few thousand pixels, so the upsampling
    passes over the whole image that the batched torch version needs are skipped.
    """
    valid = depth > VALID_THRESHOLD
    holes = np.flatnonzero(~valid)
    if holes.size == 0:
        return depth
    hole_rows, hole_cols = np.divmod(holes, depth.shape[1])
    sums, counts = depth * valid, valid.astype(np.float32)
    filled = np.zeros(holes.size, np.float32)
    pending = np.arange(holes.size)
    level = 0
    while pending.size and min(sums.shape) > 1:
        sums, counts = _halve_numpy(sums), _halve_numpy(counts)
        level += 1
        cell = (hole_rows[pending] >> level) * sums.shape[1] + (hole_cols[pending] >> level)
        count = counts.ravel()[cell]
        resolved = count > 0
        filled[pending[resolved]] = sums.ravel()[cell[resolved]] / count[resolved]
        pending = pending[~resolved]
    out = depth.copy()
    out.ravel()[holes] = filled
    return out


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
def _diamond_sums(padded: torch.Tensor, radius: int) -> list[torch.Tensor]:
    """Sums over the diamonds ``|dy| + |dx| <= r`` for r = 0..radius of a map zero-padded by ``radius``.

    Entry r is a contiguous ``B,1,H+2(radius-r),W+2(radius-r)`` tensor (its centre pixel (y, x) at
    ``[y + radius - r, x + radius - r]``). Recurrence: the diamonds of radius r-1 above and below a pixel
    cover its radius-r diamond except the centre-row pixels at |dx| in {r-1, r}, and overlap in its
    radius-(r-2) diamond, so ``D_r = D_r-1(up) + D_r-1(down) - D_r-2 + row pairs``: four passes per radius
    whatever the radius. Exact (order-independent) for integers, and for float64 sums of float32 values
    whose magnitudes span fewer than ~50 binary orders (depths in metres).
    """
    height, width = padded.shape[-2] - 2 * radius, padded.shape[-1] - 2 * radius

    def crop(t: torch.Tensor, top: int, left: int, margin: int) -> torch.Tensor:
        return t.narrow(-2, top, height + 2 * margin).narrow(-1, left, width + 2 * margin)

    sums = [padded]
    if radius >= 1:
        centre = crop(padded, 1, 1, radius - 1)
        sums.append(centre + crop(padded, 0, 1, radius - 1) + crop(padded, 2, 1, radius - 1)
                    + crop(padded, 1, 0, radius - 1) + crop(padded, 1, 2, radius - 1))
    row_pairs = padded.narrow(-1, 0, padded.shape[-1] - 1) + padded.narrow(-1, 1, padded.shape[-1] - 1)
    for r in range(2, radius + 1):
        margin = radius - r
        total = crop(sums[r - 1], 0, 1, margin) + crop(sums[r - 1], 2, 1, margin)
        total -= crop(sums[r - 2], 2, 2, margin)
        total += crop(row_pairs, r, 0, margin)                 # centre row, x - r and x - r + 1
        total += crop(row_pairs, r, 2 * r - 1, margin)         # centre row, x + r - 1 and x + r
        sums.append(total)
    return sums


# Below this fraction of measured pixels (a LiDAR scan: 3-8 %) the decisions come from pairs of nearby points
# (:func:`_remove_outliers_by_pairs`, ~3x faster on a KITTI scan); denser maps (depth cameras) take the image
# passes of :func:`_diamond_sums`, whose cost does not grow with the points.
POINT_PAIRS_MAX_DENSITY = 0.15


@functools.lru_cache(maxsize=4)
def _half_diamond_offsets(radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dy, dx, |dy| + |dx|)`` of the diamond taps after the centre in raster order (one of each +-pair),
    sorted by distance so that the taps of a smaller diamond come first."""
    dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    distance = np.abs(dy) + np.abs(dx)
    after = ((dy > 0) | ((dy == 0) & (dx > 0))) & (distance <= radius)
    order = np.argsort(distance[after], kind='stable')
    return dy[after][order], dx[after][order], distance[after][order]


def _remove_outliers_by_pairs(depth: np.ndarray, threshold: float, windows: tuple[int, ...]) -> np.ndarray:
    """:func:`remove_outliers` of one finite ``HxW`` float32 map, from the pairs of points within the largest
    diamond instead of image-wide sums; the same decisions bit for bit (test/test_prefill.py).

    Each point's neighbours are looked up once per half-diamond offset in an image of point numbers (a pair is
    found from its first point in raster order and counted for both). Window sums are float64 ``bincount``s over
    the pairs, exact like :func:`_diamond_sums`'s, so they round to the same float32 whatever the order.
    """
    height, width = depth.shape
    valid = depth > 0
    values = depth * valid                                             # as the image path: -x gives -0.0
    points = np.flatnonzero(valid)
    radius = max(windows) // 2
    if radius == 0 or points.size == 0:                                # no window has a neighbour
        return values
    padded_width = width + 2 * radius
    numbers = np.full((height + 2 * radius) * padded_width, -1, np.int32)   # point number per pixel, -1 none
    at = (points // width + radius) * padded_width + points % width + radius
    numbers[at] = np.arange(points.size, dtype=np.int32)
    first, second, pairs_within = [], [], {}
    found = 0
    for dy, dx, distance in zip(*_half_diamond_offsets(radius), strict=True):
        neighbour = numbers[at + (dy * padded_width + dx)]
        hit = np.flatnonzero(neighbour >= 0)
        first.append(hit)
        second.append(neighbour[hit])
        found += hit.size
        pairs_within[int(distance)] = found                            # pairs up to this distance come first
    first_point, second_point = np.concatenate(first), np.concatenate(second)
    point_depth = depth.ravel()[points]
    point_value = point_depth.astype(np.float64)
    outlier = np.zeros(points.size, bool)
    for size in windows:
        n = pairs_within.get(size // 2, 0)
        a, b = first_point[:n], second_point[:n]
        total = (np.bincount(a, point_value[b], points.size)
                 + np.bincount(b, point_value[a], points.size)).astype(np.float32)
        count = (np.bincount(a, minlength=points.size) + np.bincount(b, minlength=points.size)).astype(np.float32)
        mean = total / np.maximum(count, np.float32(1.0))
        outlier |= (count > 0) & (point_depth - mean > np.float32(threshold))
    cleaned = values.ravel().copy()
    cleaned[points[outlier]] = 0.0
    return cleaned.reshape(height, width)


def _takes_point_pairs(depth: torch.Tensor) -> bool:
    """Whether :func:`remove_outliers` decides this ``B,1,H,W`` map from point pairs (a finite float32 CPU map
    with at most ``POINT_PAIRS_MAX_DENSITY`` of its pixels measured)."""
    if depth.device.type != 'cpu' or depth.dtype != torch.float32 or depth.numel() == 0:
        return False
    images = depth.detach().numpy()                                      # checked in numpy: no torch overhead
    return (np.count_nonzero(images > 0) <= POINT_PAIRS_MAX_DENSITY * images.size
            and bool(np.isfinite(images).all()))


def _remove_outliers_of_batch_by_pairs(sparse: torch.Tensor, threshold: float = 1.0,
                                       windows: tuple[int, ...] = (7, 9, 13)) -> torch.Tensor:
    """:func:`remove_outliers` of a map that :func:`_takes_point_pairs` (checked by the caller), image by image."""
    depth, rank = _as_batch(sparse)
    return _restore(_per_image_numpy(depth, lambda image: _remove_outliers_by_pairs(image, threshold, windows)), rank)


def remove_outliers(sparse: torch.Tensor, threshold: float = 1.0,
                    windows: tuple[int, ...] = (7, 9, 13)) -> torch.Tensor:
    """LRRU ``dep_clear`` (LRRU.md §2.3): drop points behind their neighbourhood.

    A point is removed (set to 0) when it exceeds the mean of the valid neighbours (centre excluded) by more than
    ``threshold`` metres in any of the diamond windows. Typical cause: LiDAR points of a far surface seen through
    the camera's view of a nearer object (parallax between LiDAR and camera).

    A finite float32 map on the CPU with few points (a LiDAR scan) is decided from pairs of nearby points
    (:func:`_remove_outliers_by_pairs`); otherwise the window sums come from :func:`_diamond_sums` (values in
    float64, counts in uint8, both exact), rounded once
    to float32 and only read at the valid pixels; the decision is the float32 ``depth - sum / count >
    threshold`` of the former ``conv2d`` formulation, whose float32 sums differ from these only by rounding.
    Non-finite values keep that formulation's behaviour too: ``conv2d`` multiplies every tap of the square
    kernel (zeros included), so a NaN/inf anywhere in a window's square blocks that window's decision, and
    NaN/negative inputs come out as ``depth * valid`` (NaN / -0.0).
    """
    depth, rank = _as_batch(sparse)
    if windows and _takes_point_pairs(depth):
        return _remove_outliers_of_batch_by_pairs(sparse, threshold, windows)
    valid = depth > 0
    values = depth * valid                                            # as before: NaN stays NaN, -x gives -0.0
    batch, _, height, width = depth.shape
    points = valid.flatten().nonzero().squeeze(1)                      # decisions are only needed at points
    if points.numel() == 0 or not windows:
        return _restore(values, rank)
    finite = torch.isfinite(values)
    any_non_finite = not bool(finite.all())
    clean = torch.where(finite, values, torch.zeros_like(values)) if any_non_finite else values
    radius = max(windows) // 2
    count_dtype = torch.uint8 if 2 * radius * (radius + 1) + 1 <= 255 else torch.int32   # diamond size fits
    value_sums = _diamond_sums(F.pad(clean.double(), (radius,) * 4), radius)
    count_sums = _diamond_sums(F.pad(valid.to(count_dtype), (radius,) * 4), radius)
    point_batch = points // (height * width)
    point_row = (points // width) % height
    point_col = points % width
    point_depth = depth.flatten()[points]
    point_clean = clean.flatten()[points].double()
    outlier = torch.zeros_like(point_depth, dtype=torch.bool)
    for size in windows:
        r = size // 2
        margin = radius - r
        index = ((point_batch * (height + 2 * margin) + point_row + margin) * (width + 2 * margin)
                 + point_col + margin)
        total = (value_sums[r].flatten()[index] - point_clean).float()          # centre excluded, exact -> f32
        count = (count_sums[r].flatten()[index] - 1).float()
        mean = total / count.clamp(min=1.0)
        decide = (count > 0) & (point_depth - mean > threshold)
        if any_non_finite:
            blocked = dilate_rect((~finite).float(), size) > 0
            decide &= ~blocked.flatten()[points]
        outlier |= decide
    cleaned = values.flatten().clone()
    cleaned[points[outlier]] = 0.0
    return _restore(cleaned.view_as(values), rank)


# ------------------------------------------------------------------------------------ CPU ip_basic (OpenCV)
_CV_KERNELS: dict[str, np.ndarray] = {}


def _cv_kernel(name: str) -> np.ndarray:
    if not _CV_KERNELS:
        _CV_KERNELS.update({f'full{k}': np.ones((k, k), np.uint8) for k in (5, 7, 31)})
        _CV_KERNELS['diamond5'] = diamond_mask(5).numpy().astype(np.uint8)
    return _CV_KERNELS[name]


def fill_in_fast_cv2(sparse: np.ndarray, max_depth: float = 100.0, extrapolate: bool = True,
                     blur: str = 'gaussian', fill_holes: bool = True) -> np.ndarray:
    """:func:`fill_in_fast` on the CPU with OpenCV's morphology, median and Gaussian: ``HxW`` float32 numpy
    in, dense ``HxW`` float32 out. Same steps and borders as the torch version (module docstring); the only
    differences are float rounding in the Gaussian (separable sums in another order), < 1e-4 m
    (test/test_prefill.py). The hole pass is :func:`fill_remaining_holes_numpy`, identical to the torch one."""
    import cv2

    if blur not in ('gaussian', 'none'):
        raise ValueError(f"blur must be 'gaussian' or 'none', got {blur!r}")
    depth, valid = depth_and_valid(sparse)
    x = np.where(valid, np.float32(max_depth) - depth, np.float32(0.0))
    x = cv2.dilate(x, _cv_kernel('diamond5'))
    x = cv2.morphologyEx(x, cv2.MORPH_CLOSE, _cv_kernel('full5'))
    empty = x < VALID_THRESHOLD
    x = np.where(empty, cv2.dilate(x, _cv_kernel('full7')), x)
    if extrapolate:
        seen = x > VALID_THRESHOLD
        top_row = seen.argmax(axis=0)                                    # 0 for empty columns: untouched
        top_value = x[top_row, np.arange(x.shape[1])]
        above = np.arange(x.shape[0])[:, None] < top_row[None, :]
        x = np.where(above, top_value[None, :], x)
    empty = x < VALID_THRESHOLD
    x = np.where(empty, cv2.dilate(x, _cv_kernel('full31')), x)
    x = cv2.medianBlur(np.ascontiguousarray(x, np.float32), 5)
    if blur == 'gaussian':
        x = np.where(x > VALID_THRESHOLD, cv2.GaussianBlur(x, (5, 5), 0), x)
    x = np.where(x > VALID_THRESHOLD, np.float32(max_depth) - x, np.float32(0.0))
    if fill_holes:
        x = fill_remaining_holes_numpy(x)
    return x


def _opencv_available() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------- prefill by name
# ``ipbasic``: LiDAR line patterns (LRRU's prefill). ``nearest`` / ``linear``: scattered points (the NYU
# protocol's 500 samples) and depth-camera holes (core/interpolation.py). ``multiscale``: ip_basic's variant.
# ``lrru_authors``: the LRRU authors' own fill and anchors (core/prefill_authors.py), for their checkpoints.
PREFILL_METHODS = ('ipbasic', 'multiscale', 'nearest', 'linear', 'lrru_authors')
AUTHORS_PREFILL = 'lrru_authors'
DEFAULT_PREFILL = 'ipbasic'


def check_prefill_method(method: str) -> str:
    if method not in PREFILL_METHODS:
        raise ValueError(f'unknown prefill method {method!r}; choose from {", ".join(PREFILL_METHODS)}')
    return method


def _per_image_numpy(depth: torch.Tensor, fill: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply a numpy ``HxW -> HxW`` fill to every image of a ``B,1,H,W`` tensor (CPU work, result on its device)."""
    images = depth.detach().to('cpu', torch.float32).numpy()
    out = np.stack([fill(image[0])[None] for image in images])
    return torch.from_numpy(out).to(depth.device)


def dense_prefill(sparse: torch.Tensor, method: str = DEFAULT_PREFILL) -> torch.Tensor:
    """The dense prefill alone. ``ipbasic`` runs on OpenCV for CPU tensors (when cv2 is installed) and in torch
    elsewhere, so a CUDA frame stays on the GPU; ``nearest``/``linear`` always run in scipy on the CPU,
    ``lrru_authors`` in OpenCV/scipy on the CPU."""
    check_prefill_method(method)
    depth, rank = _as_batch(sparse)
    if method == 'ipbasic':
        if depth.device.type == 'cpu' and _opencv_available():
            dense = _per_image_numpy(depth, fill_in_fast_cv2)
        else:
            dense = fill_in_fast(depth)
    elif method == 'multiscale':
        dense = fill_in_multiscale(depth)
    elif method == AUTHORS_PREFILL:
        from .prefill_authors import authors_fill
        dense = _per_image_numpy(depth, authors_fill)
    else:
        dense = _per_image_numpy(depth, lambda image: interpolate(image, method))
    return _restore(dense, rank)


def prefill_anchors(sparse: torch.Tensor, method: str = DEFAULT_PREFILL) -> torch.Tensor:
    """The outlier-cleaned points the network re-imposes before every update: :func:`remove_outliers` for every
    method but ``lrru_authors``, which has the authors' own outlier removal (on the CPU like its fill)."""
    if method == AUTHORS_PREFILL:
        from .prefill_authors import authors_anchors
        depth, rank = _as_batch(sparse)
        return _restore(_per_image_numpy(depth, authors_anchors), rank)
    return remove_outliers(sparse)


def prefill(sparse: torch.Tensor, method: str = DEFAULT_PREFILL) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dense prefill, anchors)``: the prefill is computed from the raw sparse map (as LRRU does), the anchors
    by :func:`prefill_anchors`. Where the anchors come from point pairs (a LiDAR scan on the CPU) they are
    computed on a second thread while the fill runs: neither reads the other and numpy and OpenCV release the
    GIL, so a second core hides them (KITTI: ~1.3x instead of ~1.9x OpenCV ``fill_in_fast``, BENCHMARKS.md).
    The image-sum path of dense maps is torch work on all cores already; beside OpenCV it measured slower."""
    check_prefill_method(method)
    worker = spare_core_worker()
    if worker is None or method == AUTHORS_PREFILL or not _takes_point_pairs(_as_batch(sparse)[0]):
        return dense_prefill(sparse, method), prefill_anchors(sparse, method)
    pending = worker.submit(_remove_outliers_of_batch_by_pairs, sparse)   # = prefill_anchors, checked above
    return dense_prefill(sparse, method), pending.result()
