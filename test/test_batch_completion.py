"""The cameras of one scan in one forward pass (issue 18: on a GPU the node batches frames of one size): the
batch gives each frame what it gets alone, on real KITTI frames, through the completer and the pipeline."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame
from depth_completion_ros.model.inference import DepthCompleter
from depth_completion_ros.pipeline import DepthCompletionPipeline, PipelineSettings

# A batch of 2 may run other convolution kernels than a batch of 1 (which ones depends on the CPU's oneDNN
# dispatch): float32 sums in another order move a value by an ulp (7.6e-6 m at 64 m), and at depth edges an
# update step's sampling weights amplify that into the next step. Measured here (AMD, AVX2): max 3.8e-5 m,
# mean 2e-7 m; channels-first vs channels_last of one network differ by up to 1.1e-4 m at edges
# (test_tdu.py). The bounds leave an order of magnitude for other CPUs' kernels: max 1e-3 m, mean 1e-5 m.
TOLERANCE_M = 1e-3
MEAN_TOLERANCE_M = 1e-5


@pytest.fixture(scope='module')
def two_frames(kitti_object_dir: Path) -> list[tuple[np.ndarray, np.ndarray, CameraModel]]:
    """Two real frames cut to one size (the bottom 160 rows x 480 columns, where the LiDAR is)."""
    frames = []
    for name in ('000003', '000006'):
        frame = load_kitti_object_frame(kitti_object_dir, name)
        sparse = np.ascontiguousarray(kitti_sparse_depth(frame)[-160:, 300:780], np.float32)
        rgb = np.ascontiguousarray(frame.rgb[-160:, 300:780])
        camera = CameraModel.from_intrinsics(700.0, 700.0, 240.0, 80.0, 480, 160)
        frames.append((rgb, sparse, camera))
    assert not np.array_equal(frames[0][1], frames[1][1])
    return frames


@pytest.mark.parametrize('band', ['off', 'auto'])
@pytest.mark.parametrize('raw', [False, True])
def test_completer_batch_equals_each_frame_alone(two_frames: list, band: str, raw: bool) -> None:
    completer = DepthCompleter(weights='lrru_mini', device='cpu', band=band)
    pairs = [(rgb, sparse) for rgb, sparse, _ in two_frames]
    batch = completer.complete_batch(pairs, raw=raw, rows_below=10)
    for (rgb, sparse), together in zip(pairs, batch, strict=True):
        alone = completer.complete(rgb, sparse, raw=raw, rows_below=10)
        assert together.timings_ms['batch'] == 2 and together.depth.shape == alone.depth.shape
        assert np.array_equal(together.prefill, alone.prefill)
        if band == 'off':
            difference = np.abs(together.depth - alone.depth)
            assert float(difference.max()) <= TOLERANCE_M and float(difference.mean()) <= MEAN_TOLERANCE_M
        else:   # the batch runs on the union of the bands: inside each frame's own band within the band tolerance
            start, stop = alone.band
            inside = np.abs(together.depth[start:stop] - alone.depth[start:stop])
            assert float(inside.max()) <= 0.05 and float(inside.mean()) <= 1e-3
            assert together.band[0] <= start and together.band[1] >= stop
    # another size: in turn, exactly as alone
    small = [(rgb[:96], sparse[:96]) for rgb, sparse in pairs[:1]] + pairs[1:]
    mixed = completer.complete_batch(small, raw=raw)
    assert 'batch' not in mixed[0].timings_ms and mixed[0].depth.shape == (96, 480)


def test_pipeline_batch_equals_each_frame_alone(two_frames: list) -> None:
    pipeline = DepthCompletionPipeline(PipelineSettings(), weights='lrru_mini', device='cpu')
    assert not pipeline.batches_frames                  # on a CPU the node runs the cameras in turn
    outputs = pipeline.complete_batch([(rgb, sparse, camera, None) for rgb, sparse, camera in two_frames])
    for (rgb, sparse, camera), together in zip(two_frames, outputs, strict=True):
        alone = pipeline.complete(rgb, sparse, camera)
        known = alone.depth > 0
        assert np.array_equal(known, together.depth > 0) and known.mean() > 0.3
        assert float(np.abs(together.depth[known] - alone.depth[known]).max()) <= 0.05
        assert together.cloud_xyz is not None and together.cloud_xyz.shape == (160, 480, 3)
