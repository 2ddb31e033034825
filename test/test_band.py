"""Band-limited inference (issue 20, item 1): the network on the rows validity can keep, on real KITTI frames.

The band is not bit-equal to the full frame (the encoder's receptive field spans most of the frame), so the
tests hold the tolerance measured in core/band.py at BAND_MARGIN_PX = 32: over 8 KITTI frames the shipped
lrru_mini differed by at most 0.0002 m and the authors' imported LRRU-mini checkpoint by at most 0.042 m (mean
4e-5 m), no kept pixel above 0.05 m. band=off must stay bit-identical to the path before the band existed.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from depth_completion_ros.cli import main as cli_main
from depth_completion_ros.core.band import BAND_MARGIN_PX, network_band
from depth_completion_ros.core.prefill import VALID_THRESHOLD
from depth_completion_ros.core.prefill import prefill as run_prefill
from depth_completion_ros.core.validity import ValiditySettings, valid_mask
from depth_completion_ros.data.kitti_raw import KittiRawDrive
from depth_completion_ros.data.loaders import KittiObjectFolder
from depth_completion_ros.data.sample import Sample
from depth_completion_ros.model.inference import DepthCompleter
from depth_completion_ros.pipeline import DepthCompletionPipeline, PipelineSettings

AUTHORS_CHECKPOINT = Path(__file__).resolve().parents[2] / 'shared' / 'fixtures' / 'lrru_authors' / 'mini' / \
    'checkpoint.pt'
# Inside the valid region, |band - full|: the measured worst case with some room for other CPUs' rounding.
TOLERANCE_MAX_M = 0.05
TOLERANCE_MEAN_M = 1e-4


@pytest.fixture(scope='module')
def kitti_frames(shared_data: Path) -> list[Sample]:
    """One kitti_object frame and one raw-drive frame (different drives, calibrations and LiDAR reach)."""
    return [KittiObjectFolder(shared_data / 'kitti_object')[1],
            KittiRawDrive(shared_data / 'kitti_raw_2011_09_26_udacity_seq')[0]]


def assert_within_tolerance(band: np.ndarray, full: np.ndarray, valid: np.ndarray) -> None:
    assert valid.sum() > 50_000                      # a real LiDAR frame keeps ~60-90k pixels
    difference = np.abs(band - full)[valid]
    assert float(difference.max()) <= TOLERANCE_MAX_M, float(difference.max())
    assert float(difference.mean()) <= TOLERANCE_MEAN_M, float(difference.mean())


def test_band_rows_cover_the_measurements_on_the_16_row_grid() -> None:
    sparse = np.zeros((375, 100), np.float32)
    sparse[121, 5] = sparse[300, 7] = 4.0
    start, stop = network_band(sparse)
    assert (start, stop) == (80, 375)                # 121 - 32 = 89, down to the 16-row grid; to the bottom
    assert network_band(sparse, rows_above=10)[0] == 64
    assert network_band(sparse, margin_px=0) == (112, 375)
    start, stop = network_band(sparse, rows_below=10)
    assert start == 80 and stop >= 300 + 1 + 10 + BAND_MARGIN_PX and (stop - start) % 16 == 0
    assert network_band(np.zeros((375, 100), np.float32)) == (0, 375)     # nothing measured: the whole frame
    assert network_band(sparse, rows_above=1000) == (0, 375)


def test_band_off_is_bit_identical_to_the_full_frame_path(kitti_frames: list[Sample]) -> None:
    """The network call as it was before the band (prefill, network on every row, floor): same bits."""
    sample = kitti_frames[0]
    rgb, sparse = sample.rgb[-160:, :640], sample.sparse[-160:, :640]   # a real crop keeps this test quick
    completer = DepthCompleter(weights='lrru_mini', device='cpu')
    result = completer.complete(rgb, sparse)
    assert result.band == (0, 160)
    with torch.inference_mode():
        sparse_t = torch.from_numpy(np.ascontiguousarray(sparse))[None, None].clamp(min=0.0)
        dense, anchors = run_prefill(sparse_t, method=completer.prefill_method)
        rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
        depth = completer.network()(rgb_t, sparse_t, dense, anchors)[-1][0, 0]
        depth = torch.maximum(depth, anchors[anchors > VALID_THRESHOLD].min()).numpy()
    assert np.array_equal(result.depth, depth)


def test_pipeline_band_auto_matches_the_full_frame_where_valid(kitti_frames: list[Sample]) -> None:
    sample = kitti_frames[0]
    outputs = {}
    for band in ('off', 'auto'):
        pipeline = DepthCompletionPipeline(PipelineSettings(max_range=90.0), device='cpu', band=band)
        outputs[band] = pipeline.complete(sample.rgb, sample.sparse, sample.camera)
    start, stop = network_band(sample.sparse, rows_above=0, rows_below=10)
    assert start >= 48 and stop == 375               # KITTI object 000003: the LiDAR reaches row ~90
    valid = outputs['off'].depth > 0
    assert np.array_equal(valid, outputs['auto'].depth > 0)   # the band never changes what is kept
    assert_within_tolerance(outputs['auto'].depth, outputs['off'].depth, valid)


def test_validity_off_runs_the_whole_frame(kitti_frames: list[Sample]) -> None:
    """Validity off keeps every row, so the pipeline must not cut any (network stubbed: only the call counts)."""
    calls: list[dict] = []

    class Recorder:
        band = 'auto'

        def complete(self, rgb: np.ndarray, sparse: np.ndarray, **kwargs: object) -> object:
            calls.append(kwargs)
            return DepthCompleter(prefill_only=True).complete(rgb, sparse)

    sample = kitti_frames[0]
    settings = PipelineSettings()
    pipeline = DepthCompletionPipeline(settings, completer_factory=lambda _: Recorder(), band='auto')
    pipeline.complete(sample.rgb, sample.sparse, sample.camera)
    settings.validity.enable = False
    pipeline.complete(sample.rgb, sample.sparse, sample.camera)
    assert calls == [{'rows_above': 0, 'rows_below': 10}, {'band': 'off'}]


def test_authors_checkpoint_band_matches_the_full_frame_where_valid(kitti_frames: list[Sample],
                                                                    tmp_path: Path) -> None:
    if not AUTHORS_CHECKPOINT.is_file():
        pytest.skip(f'authors\' checkpoint not found at {AUTHORS_CHECKPOINT}')
    weights = tmp_path / 'authors_mini.safetensors'
    assert cli_main(['weights', 'import', str(AUTHORS_CHECKPOINT), '--variant', 'mini', '--out', str(weights)]) == 0
    completer = DepthCompleter(weights=str(weights), device='cpu', band='auto')
    settings = ValiditySettings()
    for sample in kitti_frames:
        full = completer.complete(sample.rgb, sample.sparse, band='off')
        band = completer.complete(sample.rgb, sample.sparse, rows_below=math.ceil(settings.max_distance_px))
        assert band.band is not None and band.band[0] > 0
        assert_within_tolerance(band.depth, full.depth, valid_mask(full.depth, sample.sparse, sample.camera,
                                                                   settings))
