"""Torch prefill vs an OpenCV/NumPy implementation of the same ip_basic steps, on real KITTI sparse maps."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_completion_ros.core import prefill as prefill_module
from depth_completion_ros.core.prefill import (
    extend_top,
    fill_in_fast,
    fill_in_multiscale,
    median5,
    prefill,
    remove_outliers,
)

cv2 = pytest.importorskip('cv2')

FRAMES = ('000000', '000003')
# Pixels whose torch and OpenCV results differ by more than this are counted as disagreeing (float32 noise and
# median ties can move single pixels slightly; the requirement is >= 99 % of pixels within the tolerance).
TOLERANCE_M = 1e-3


# ------------------------------------------------------------------ KITTI projection, written for this test
def _read_calib(path: Path) -> dict[str, np.ndarray]:
    calib: dict[str, np.ndarray] = {}
    for line in path.read_text().splitlines():
        if ':' in line:
            key, values = line.split(':', 1)
            if values.strip():
                calib[key.strip()] = np.array(values.split(), dtype=np.float64)
    return calib


def kitti_sparse_depth(root: Path, frame: str) -> np.ndarray:
    """Velodyne points -> P2 . R0_rect . Tr_velo_to_cam -> nearest-return sparse depth (metres, 0 = none)."""
    calib = _read_calib(root / 'calib' / f'{frame}.txt')
    image = cv2.imread(str(root / 'image_2' / f'{frame}.png'))
    height, width = image.shape[:2]
    p2 = calib['P2'].reshape(3, 4)
    r0 = np.eye(4)
    r0[:3, :3] = calib['R0_rect'].reshape(3, 3)
    tr = np.eye(4)
    tr[:3, :4] = calib['Tr_velo_to_cam'].reshape(3, 4)
    points = np.fromfile(root / 'velodyne' / f'{frame}.bin', dtype=np.float32).reshape(-1, 4)[:, :3]
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1).T
    projected = p2 @ r0 @ tr @ homogeneous                         # 3,N
    z = projected[2]
    keep = z > 0.1
    u = np.round(projected[0, keep] / z[keep]).astype(np.int64)
    v = np.round(projected[1, keep] / z[keep]).astype(np.int64)
    z = z[keep]
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], z[inside]
    depth = np.zeros((height, width), np.float32)
    order = np.argsort(-z)                                         # far first, near overwrites: z-buffer
    depth[v[order], u[order]] = z[order]
    return depth


# ------------------------------------------------------------------ OpenCV reference of the same steps
FULL = {k: np.ones((k, k), np.uint8) for k in (5, 7, 9, 31)}
DIAMOND5 = np.array([[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]], np.uint8)


def cross(size: int) -> np.ndarray:
    kernel = np.zeros((size, size), np.uint8)
    kernel[size // 2, :] = 1
    kernel[:, size // 2] = 1
    return kernel


def reference_fill_in_fast(sparse: np.ndarray, max_depth: float = 100.0) -> np.ndarray:
    depth = sparse.astype(np.float32).copy()
    valid = depth > 0.1
    depth[valid] = max_depth - depth[valid]
    depth = cv2.dilate(depth, DIAMOND5)
    depth = cv2.morphologyEx(depth, cv2.MORPH_CLOSE, FULL[5])
    empty = depth < 0.1
    depth[empty] = cv2.dilate(depth, FULL[7])[empty]
    top_row = np.argmax(depth > 0.1, axis=0)
    top_value = depth[top_row, np.arange(depth.shape[1])]
    rows = np.arange(depth.shape[0])[:, None]
    depth = np.where(rows < top_row[None, :], top_value[None, :], depth)
    empty = depth < 0.1
    depth[empty] = cv2.dilate(depth, FULL[31])[empty]
    depth = cv2.medianBlur(depth.astype(np.float32), 5)
    valid = depth > 0.1
    depth[valid] = cv2.GaussianBlur(depth, (5, 5), 0)[valid]
    valid = depth > 0.1
    depth[valid] = max_depth - depth[valid]
    return depth


def reference_remove_outliers(sparse: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    valid = (sparse > 0).astype(np.float32)
    outlier = np.zeros(sparse.shape, bool)
    for size in (7, 9, 13):
        r = size // 2
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        kernel = ((np.abs(yy) + np.abs(xx)) <= r).astype(np.float32)
        kernel[r, r] = 0
        total = cv2.filter2D(sparse * valid, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        count = cv2.filter2D(valid, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        mean = total / np.maximum(count, 1)
        outlier |= (valid > 0) & (count > 0.5) & (sparse - mean > threshold)
    return np.where(outlier, 0, sparse).astype(np.float32)


# ------------------------------------------------------------------ tests
@pytest.fixture(scope='module')
def kitti_sparse(kitti_object_dir: Path) -> list[np.ndarray]:
    return [kitti_sparse_depth(kitti_object_dir, frame) for frame in FRAMES]


def test_projection_matches_readme_counts(kitti_sparse: list[np.ndarray]) -> None:
    # README: 20,285 points of frame 000000 land in the image; a z-buffer keeps fewer pixels than points.
    assert 15_000 < int((kitti_sparse[0] > 0).sum()) <= 20_285


def test_fill_in_fast_matches_opencv(kitti_sparse: list[np.ndarray]) -> None:
    for sparse in kitti_sparse:
        expected = reference_fill_in_fast(sparse)
        got = fill_in_fast(torch.from_numpy(sparse)[None, None], fill_holes=False)[0, 0].numpy()
        agree = np.abs(got - expected) <= TOLERANCE_M
        assert agree.mean() >= 0.99, f'only {agree.mean():.4%} of pixels within {TOLERANCE_M} m'


def test_fill_in_fast_batched_and_hole_free(kitti_sparse: list[np.ndarray]) -> None:
    height = min(s.shape[0] for s in kitti_sparse)
    width = min(s.shape[1] for s in kitti_sparse)
    batch = torch.stack([torch.from_numpy(s[:height, :width]) for s in kitti_sparse])[:, None]
    dense = fill_in_fast(batch)
    assert dense.shape == batch.shape
    assert bool((dense > 0).all()), 'the final pass must leave no holes'
    single = fill_in_fast(batch[1:2])
    assert torch.allclose(dense[1:2], single)


def test_multiscale_runs_and_fills(kitti_sparse: list[np.ndarray]) -> None:
    sparse = torch.from_numpy(kitti_sparse[1])
    dense = fill_in_multiscale(sparse)
    assert dense.shape == sparse.shape and bool((dense > 0).all())
    valid = sparse > 0
    # Prefill should stay close to the measurements where there are some (median/blur move them a little).
    assert float((dense[valid] - sparse[valid]).abs().median()) < 0.5


def test_remove_outliers_matches_reference(kitti_sparse: list[np.ndarray]) -> None:
    sparse = kitti_sparse[0]
    got = remove_outliers(torch.from_numpy(sparse)).numpy()
    expected = reference_remove_outliers(sparse)
    assert np.mean(got == expected) >= 0.999
    removed = (sparse > 0) & (got == 0)
    assert 0 < removed.sum() < 0.2 * (sparse > 0).sum()


def test_remove_outliers_drops_planted_behind_point() -> None:
    sparse = torch.zeros(1, 1, 40, 40)
    sparse[0, 0, 10:30:2, 10:30:2] = 5.0                             # a wall at 5 m
    sparse[0, 0, 20, 21] = 20.0                                       # a far point seen "through" it
    cleaned = remove_outliers(sparse)
    assert cleaned[0, 0, 20, 21] == 0
    assert torch.equal(cleaned[0, 0, 10:30:2, 10:30:2], sparse[0, 0, 10:30:2, 10:30:2])


def test_prefill_returns_dense_and_anchors() -> None:
    sparse = torch.zeros(2, 1, 37, 61)
    sparse[:, :, ::4, ::3] = 7.0
    dense, anchors = prefill(sparse)
    assert dense.shape == anchors.shape == sparse.shape
    assert torch.allclose(dense, torch.full_like(dense, 7.0), atol=1e-4)
    assert torch.equal(anchors, sparse)
    with pytest.raises(ValueError):
        prefill(sparse, method='nope')


def _prefill_in_child(sparse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dense, anchors = prefill(torch.from_numpy(sparse))
    return dense.numpy(), anchors.numpy()


def test_prefill_anchors_beside_the_fill_equal_serial_and_survive_fork(kitti_sparse: list[np.ndarray]) -> None:
    import multiprocessing

    from depth_completion_ros.core.prefill import dense_prefill, prefill_anchors

    sparse = kitti_sparse[1]
    x = torch.from_numpy(sparse)
    for method in ('ipbasic', 'lrru_authors'):
        dense, anchors = prefill(x, method)                   # ipbasic's anchors ran on the worker thread
        assert torch.equal(dense, dense_prefill(x, method)) and torch.equal(anchors, prefill_anchors(x, method))
    # A forked process (DataLoader workers, multiprocessing) inherits the parent's worker object but not its
    # thread: it must start its own instead of queueing on a thread that does not exist (a hang).
    with multiprocessing.get_context('fork').Pool(1) as pool:
        child_dense, child_anchors = pool.apply_async(_prefill_in_child, (sparse,)).get(timeout=60)
    assert np.array_equal(child_dense, dense_prefill(x).numpy())
    assert np.array_equal(child_anchors, remove_outliers(x).numpy())


def test_helpers_match_opencv_on_random_maps() -> None:
    rng = np.random.default_rng(0)
    image = (rng.random((23, 31)) * 10).astype(np.float32)
    torch_image = torch.from_numpy(image)[None, None]
    assert np.allclose(median5(torch_image)[0, 0].numpy(), cv2.medianBlur(image, 5))
    column_top = np.zeros((6, 3), np.float32)
    column_top[3, 0] = 2.0
    column_top[1, 2] = 4.0
    out = extend_top(torch.from_numpy(column_top)[None, None])[0, 0].numpy()
    assert np.all(out[:4, 0] == 2.0) and np.all(out[:, 1] == 0) and np.all(out[:2, 2] == 4.0)


def test_empty_map_stays_zero() -> None:
    assert torch.count_nonzero(fill_in_fast(torch.zeros(1, 1, 16, 16))) == 0


# ------------------------------------------------------------------ fast paths vs the straightforward torch code
def unfold_median5(x: torch.Tensor) -> torch.Tensor:
    """The former ``median5``: sort all 25 samples of every window (replicated borders)."""
    batch, _, height, width = x.shape
    patches = torch.nn.functional.unfold(torch.nn.functional.pad(x, (2, 2, 2, 2), mode='replicate'), 5)
    return patches.median(dim=1).values.view(batch, 1, height, width)


def conv_remove_outliers(sparse: torch.Tensor, threshold: float = 1.0, sum_dtype: torch.dtype = torch.float32,
                         windows: tuple[int, ...] = (7, 9, 13)) -> torch.Tensor:
    """The former ``remove_outliers``: two ``conv2d`` per diamond window (B,1,H,W in and out). With float32 sums
    (as it was) its rounding can flip knife-edge decisions; with float64 sums rounded to float32 it is the
    exact-sum formulation that the fast version implements."""
    valid = (sparse > 0).float()
    values = sparse * valid
    outlier = torch.zeros_like(sparse, dtype=torch.bool)
    for size in windows:
        kernel = prefill_module.diamond_mask(size, include_centre=False).view(1, 1, size, size).to(sum_dtype)
        total = torch.nn.functional.conv2d(values.to(sum_dtype), kernel, padding=size // 2).float()
        count = torch.nn.functional.conv2d(valid.to(sum_dtype), kernel, padding=size // 2).float()
        mean = total / count.clamp(min=1.0)
        outlier |= (valid > 0) & (count > 0) & (sparse - mean > threshold)
    return torch.where(outlier, torch.zeros_like(sparse), values)


def _random_maps(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    maps = []
    for shape in [(1, 1, 1, 1), (1, 1, 2, 3), (2, 1, 5, 7), (3, 1, 17, 29), (1, 1, 64, 1), (1, 1, 1, 50),
                  (2, 1, 300, 400), (1, 1, 375, 1242)]:
        uniform = torch.rand(shape, generator=generator) * 80
        maps.append(uniform)                                                             # distinct values
        maps.append(torch.randint(0, 3, shape, generator=generator).float())            # many ties
        maps.append(torch.where(torch.rand(shape, generator=generator) < 0.8, 0.0, uniform))  # mostly zeros
        maps.append(uniform - 40.0)                                                     # negatives too
    return maps


def test_median5_is_bit_exact_against_unfold_median() -> None:
    for x in _random_maps(0):
        assert torch.equal(median5(x), unfold_median5(x)), tuple(x.shape)


def test_median5_network_by_the_zero_one_principle() -> None:
    # Stage 3 (13-candidate selection) on every 0-1 5x5 matrix with sorted rows and columns (252 of them): the
    # network must return the 13th smallest of all 25. By the 0-1 principle this proves it for all inputs whose
    # 5x5 matrix is row- and column-sorted, which stages 1-2 produce (checked below and in the test above).
    matrices = []
    for zeros in itertools.product(range(6), repeat=5):          # zeros per row, non-increasing down the rows
        if all(a >= b for a, b in itertools.pairwise(zeros)):
            matrices.append([[0.0 if col < zeros[row] else 1.0 for col in range(5)] for row in range(5)])
    assert len(matrices) == 252
    grid = torch.tensor(matrices)                                                          # N,5,5
    wires = [grid[:, i, j] for i, j in prefill_module._MEDIAN_BAND]
    selected = prefill_module._select(wires, prefill_module._MEDIAN13_STEPS, prefill_module._MEDIAN13_OUTPUT)
    expected = (grid.flatten(1).sum(dim=1) >= 13).float()
    assert torch.equal(selected, expected)
    # Stages 1-2: sliding-window ranks on every 0-1 sequence of length 5 (and on random data, all ranks).
    sequences = torch.tensor(list(itertools.product((0.0, 1.0), repeat=5)))               # 32,5
    ranks = prefill_module._window5_ranks(sequences, 1, (0, 1, 2, 3, 4))
    assert torch.equal(torch.cat([ranks[r] for r in range(5)], dim=1), sequences.sort(dim=1).values)
    rows = torch.rand(3, 40, generator=torch.Generator().manual_seed(1))
    ranks = prefill_module._window5_ranks(rows, 1, (0, 1, 2, 3, 4))
    expected_ranks = rows.unfold(1, 5, 1).sort(dim=2).values                               # 3,36,5
    for rank in range(5):
        assert torch.equal(ranks[rank], expected_ranks[..., rank])


def test_fill_in_fast_identical_with_unfold_median_on_kitti(kitti_sparse: list[np.ndarray],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    batch = [torch.from_numpy(s)[None, None] for s in kitti_sparse]
    fast = [fill_in_fast(s) for s in batch]
    fast_multiscale = fill_in_multiscale(batch[0])
    monkeypatch.setattr(prefill_module, 'median5', unfold_median5)
    for got, s in zip(fast, batch, strict=True):
        assert torch.equal(got, fill_in_fast(s))
    assert torch.equal(fast_multiscale, fill_in_multiscale(batch[0]))


def test_remove_outliers_identical_to_conv_version(kitti_sparse: list[np.ndarray]) -> None:
    def bits(t: torch.Tensor) -> torch.Tensor:                  # bit patterns: NaN == NaN, -0.0 != 0.0
        return t.contiguous().view(torch.int32)

    # Real LiDAR maps: identical to the former float32 conv2d version.
    for sparse in kitti_sparse:
        x = torch.from_numpy(sparse)[None, None]
        got = remove_outliers(x)
        assert torch.equal(bits(got), bits(conv_remove_outliers(x)))
        assert 0 < int(((x > 0) & (got == 0)).sum()) < 0.2 * int((x > 0).sum())
    # Random maps (dense ones too, negatives, NaN/inf): identical to the exact-sum conv version; the float32
    # conv version's own rounding (~1e-3 on a 13x13 sum of 84 depths) may flip a rare knife-edge decision.
    generator = torch.Generator().manual_seed(3)
    for x in _random_maps(2):
        flat = x.abs().flatten()
        with_bad = flat.clone()
        for bad in (float('nan'), float('inf'), -float('inf')):
            with_bad[torch.randint(0, flat.numel(), (max(1, flat.numel() // 500),), generator=generator)] = bad
        for case in (x.abs(), x - 10, with_bad.view_as(x)):
            got = remove_outliers(case)
            assert torch.equal(bits(got), bits(conv_remove_outliers(case, sum_dtype=torch.float64))), x.shape
            flips = int((bits(got) != bits(conv_remove_outliers(case))).sum())
            assert flips <= 1e-5 * case.numel() + 1, (x.shape, flips)
    for size in (3, 5, 25):                                       # other windows, incl. counts beyond uint8
        x = _random_maps(4)[-2]
        expected = conv_remove_outliers(x, sum_dtype=torch.float64, windows=(size,))
        assert torch.equal(remove_outliers(x, windows=(size,)), expected), size


def test_remove_outliers_by_point_pairs_identical_to_image_sums(kitti_sparse: list[np.ndarray],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def bits(t: torch.Tensor) -> torch.Tensor:
        return t.contiguous().view(torch.int32)

    taken = []
    by_pairs = prefill_module._remove_outliers_by_pairs
    monkeypatch.setattr(prefill_module, '_remove_outliers_by_pairs',
                        lambda *args: taken.append(args[0].shape) or by_pairs(*args))
    # A KITTI scan (~4 % of the pixels) is decided from point pairs, and equals the image-sum formulation.
    for sparse in kitti_sparse:
        x = torch.from_numpy(sparse)[None, None]
        got = remove_outliers(x)
        assert taken and taken[-1] == sparse.shape
        assert torch.equal(bits(got), bits(conv_remove_outliers(x, sum_dtype=torch.float64)))
    # Sparse random maps: distinct depths, ties, negatives, image edges, batches, other windows.
    generator = torch.Generator().manual_seed(5)
    for shape in [(1, 1, 1, 1), (1, 1, 2, 3), (2, 1, 17, 29), (1, 1, 64, 1), (1, 1, 1, 50), (2, 1, 300, 400)]:
        for density in (0.01, 0.05, 0.14):
            present = torch.rand(shape, generator=generator) < density
            for values in (torch.rand(shape, generator=generator) * 80,
                           torch.randint(1, 4, shape, generator=generator).float(),
                           torch.rand(shape, generator=generator) * 80 - 20):
                x = torch.where(present, values, torch.zeros(shape))
                calls = len(taken)
                for windows in ((7, 9, 13), (3, 5, 25), (1,)):
                    got = remove_outliers(x, windows=windows)
                    expected = conv_remove_outliers(x, sum_dtype=torch.float64, windows=windows)
                    assert torch.equal(bits(got), bits(expected)), (shape, density, windows)
                if float((x > 0).float().mean()) <= prefill_module.POINT_PAIRS_MAX_DENSITY:
                    assert len(taken) > calls, 'a sparse finite map must take the point-pair path'
    # A denser map or one with NaN/inf takes the image sums.
    calls = len(taken)
    remove_outliers(torch.rand(1, 1, 40, 40, generator=generator) * 10)
    with_nan = torch.from_numpy(kitti_sparse[0].copy())
    with_nan[5, 5] = float('nan')
    remove_outliers(with_nan)
    assert len(taken) == calls


def test_hole_pass_numpy_identical_to_torch(kitti_sparse: list[np.ndarray]) -> None:
    from depth_completion_ros.core.prefill import fill_in_fast_cv2, fill_remaining_holes, fill_remaining_holes_numpy

    generator = torch.Generator().manual_seed(6)
    maps = [torch.from_numpy(fill_in_fast_cv2(sparse, fill_holes=False)) for sparse in kitti_sparse]
    for shape in [(1, 1), (2, 3), (5, 7), (17, 29), (64, 1), (1, 50), (33, 65), (300, 401)]:
        for density in (0.0, 0.001, 0.02, 0.3, 1.0):
            present = torch.rand(shape, generator=generator) < density
            maps.append(torch.where(present, torch.rand(shape, generator=generator) * 80 - 5, torch.zeros(shape)))
    for x in maps:
        expected = fill_remaining_holes(x[None, None])[0, 0].numpy()
        got = fill_remaining_holes_numpy(x.numpy())
        assert np.array_equal(got.view(np.int32), expected.view(np.int32)), tuple(x.shape)
    assert bool((fill_remaining_holes_numpy(maps[0].numpy()) > 0.1).all())


# ------------------------------------------------------------------ CPU ip_basic on OpenCV vs the torch version
# The two run the same steps with the same borders; the median is exact in both (float32, every output is one of
# the inputs), so the only difference is float rounding in the 5x5 Gaussian (OpenCV sums the separable taps in
# another order). Depths are inverted around 100 m there, where one float32 ulp is 7.6e-6 m: a few ulps.
CV2_TORCH_TOLERANCE_M = 1e-4


def test_opencv_ipbasic_equals_torch_on_kitti(kitti_sparse: list[np.ndarray]) -> None:
    from depth_completion_ros.core.prefill import dense_prefill, fill_in_fast_cv2

    for sparse in kitti_sparse:
        expected = fill_in_fast(torch.from_numpy(sparse)[None, None])[0, 0].numpy()
        got = fill_in_fast_cv2(sparse)
        assert got.dtype == np.float32 and got.shape == sparse.shape
        assert float(np.abs(got - expected).max()) <= CV2_TORCH_TOLERANCE_M
        assert bool((got > 0).all())
        # prefill on a CPU tensor takes the OpenCV path: same map as the direct call, bit for bit
        assert np.array_equal(dense_prefill(torch.from_numpy(sparse), 'ipbasic').numpy(), got)
    without_holes_pass = fill_in_fast_cv2(kitti_sparse[0], fill_holes=False)
    assert np.array_equal(without_holes_pass, reference_fill_in_fast(kitti_sparse[0]))   # the test's own steps


def test_prefill_methods_by_name(kitti_sparse: list[np.ndarray]) -> None:
    from depth_completion_ros.core.prefill import PREFILL_METHODS, dense_prefill

    crop = torch.from_numpy(kitti_sparse[0][-120:, 400:700].copy())
    for method in PREFILL_METHODS:
        dense = dense_prefill(crop[None, None], method)
        assert dense.shape == (1, 1, 120, 300) and bool((dense > 0).all()), method
    measured = crop > 0.1
    for method in ('nearest', 'linear'):                                # scattered-data fills keep every point
        assert torch.equal(dense_prefill(crop, method)[measured], crop[measured])
