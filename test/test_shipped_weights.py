"""The shipped LRRU-Mini weights: present, small, documented, loadable, finite on a real KITTI frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.model import list_shipped_weights, load_model

pytestmark = pytest.mark.skipif(not any(w['name'] == 'lrru_mini' for w in list_shipped_weights()),
                                reason='lrru_mini.safetensors not shipped')


def test_shipped_mini_is_listed_with_training_record() -> None:
    entry = next(w for w in list_shipped_weights() if w['name'] == 'lrru_mini')
    assert entry['variant'] == 'mini'
    assert 0.5e6 < entry['size_bytes'] < 3e6            # ~0.33 M float32 parameters
    _, metadata = load_model('lrru_mini', variant='mini')
    training = metadata['training']
    assert training['config']['variant'] == 'mini' and 'seed' in training['config']
    assert training['iterations'] > 0 and training['wall_seconds'] > 0


def test_shipped_mini_runs_on_a_real_kitti_frame(kitti_object_dir: Path) -> None:
    from depth_completion_ros.data.loaders import KittiObjectFolder, bottom_crop
    from depth_completion_ros.model import DepthCompleter

    sample = bottom_crop(KittiObjectFolder(kitti_object_dir)[0], 256)     # the KITTI evaluation crop
    result = DepthCompleter(variant='mini', weights='lrru_mini', device='cpu').complete(sample.rgb, sample.sparse)
    assert result.depth.shape == sample.sparse.shape
    assert np.all(np.isfinite(result.depth))
    measured = sample.sparse > 0
    # Sanity of scale: the completion agrees with the LiDAR it was given (median error well under a metre).
    assert np.median(np.abs(result.depth[measured] - sample.sparse[measured])) < 0.5
    assert 1.0 < float(np.median(result.depth)) < 80.0
