"""issue 17 (5, 4): pictures follow the data and name what ran; null metrics say why; an RGB-D bag under a
LiDAR config names the rgbd_camera config. Real Kinect and KITTI frames; the demo end to end on a Kinect bag."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros import cli
from depth_completion_ros.core import visualize
from depth_completion_ros.core.kitti import kitti_sparse_depth, load_kitti_object_frame
from depth_completion_ros.data.loaders import open_source
from depth_completion_ros.ros.runtime import find_config
from depth_completion_ros.tools.make_bag import make_bag

NYU_INTRINSICS = [518.0, 519.0, 325.5, 253.5]


@pytest.fixture(scope='module')
def kinect(nyu_dir: Path):
    return open_source(f'rgbd:{nyu_dir}', intrinsics=NYU_INTRINSICS, depth_scale=1000)[0]


@pytest.fixture(scope='module')
def kinect_bag(nyu_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bag = tmp_path_factory.mktemp('bags') / 'kinect'
    make_bag(f'rgbd:{nyu_dir}', bag, frames=2, intrinsics=NYU_INTRINSICS)
    return bag


def test_the_colour_scale_follows_the_data(kinect, kitti_object_dir: Path) -> None:
    """A fixed 0-80 m scale drew a room in the first tenth of the colour map."""
    indoor = visualize.display_max_depth([kinect.sparse])
    assert np.percentile(kinect.sparse[kinect.sparse > 0], 98) <= indoor <= 10.0
    frame = load_kitti_object_frame(kitti_object_dir, '000003')
    street = visualize.display_max_depth([kitti_sparse_depth(frame, min_range=0.1, max_range=90.0)])
    assert 20.0 <= street <= 90.0 and street % 5 == 0
    assert visualize.display_max_depth([kinect.sparse * 10.0], limit=10.0) == 10.0  # the preset's range caps it
    assert visualize.display_max_depth([np.zeros((4, 4), np.float32)]) == 1.0
    assert visualize.readable_ticks(9.0) == 10 and visualize.readable_ticks(80.0) == 9


def test_unknown_is_black_in_the_confidence_panel_as_its_legend_says(kinect) -> None:
    """The node publishes confidence 0 where the depth is unknown; drawn with the colour map that was purple
    under a legend saying 'black = no value'."""
    dense = kinect.sparse.copy()
    dense[:, 320:] = 0.0                                               # right half unknown
    confidence = np.where(dense > 0, np.float32(0.9), np.float32(0.0))
    picture = visualize.completion_preview(kinect.rgb, kinect.sparse, dense, dense, confidence=confidence)
    height = kinect.rgb.shape[0]
    panel = picture[4 * (height + 4):4 * (height + 4) + height]       # RGB, sparse, prefill, dense, confidence
    assert (panel[100:, 330:] == 0).all()                             # unknown: black
    known = panel[100:, :300][dense[100:, :300] > 0]
    assert (known.sum(axis=-1) > 0).all()                             # known: coloured


def test_an_rgbd_bag_with_the_default_config_names_the_rgbd_config(kinect_bag: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(['demo', '--bag', str(kinect_bag), '--out', str(tmp_path / 'o')])
    err = capsys.readouterr().err
    assert status == 2 and 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert 'is an RGB-D bag' in err and '--config rgbd_camera' in err and 'CONFIG=rgbd_camera' in err


@pytest.mark.ros
@pytest.mark.slow
def test_demo_on_a_kinect_bag_names_the_weights_and_prefill_that_ran_and_why_metrics_are_null(
        kinect_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / 'depth_camera.yaml'                           # rgbd_camera without its model.weights
    config.write_text(find_config('rgbd_camera').read_text().replace('model.weights: lrru_mini_rgbd',
                                                                     'model.weights: ""'))
    drawn: list[dict] = []
    real_preview = visualize.completion_preview

    def recording_preview(*args, **kwargs):
        drawn.append(kwargs)
        return real_preview(*args, **kwargs)

    monkeypatch.setattr(visualize, 'completion_preview', recording_preview)
    out = tmp_path / 'out'
    status = cli.main(['demo', '--bag', str(kinect_bag), '--out', str(out), '--config', str(config),
                       '--device', 'cpu'])
    stdout = capsys.readouterr().out
    assert status == 0, stdout[-2000:]
    assert 'demo: weights lrru_mini_rgbd (input_mode depth: a depth camera' in stdout
    assert '-> node (lrru_mini_rgbd) ->' in stdout                   # was 'LRRU-mini' whatever ran
    assert len(drawn) == 2
    for kwargs in drawn:
        assert kwargs['prefill_label'] == 'prefill (linear)'         # was always 'prefill (ip_basic)'
        assert kwargs['dense_label'].startswith('dense (lrru_mini_rgbd)')
        assert kwargs['vmax'] <= 10.0                                 # the preset's range, not 0-80 m
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['rmse_mm'] == {'prefill': None, 'model': None} and summary['output_coverage'] is None
    assert '--gt-topic' in summary['rmse_mm_reason'] and '--gt-topic' in summary['output_coverage_reason']
    assert summary['frames_out'] == 2
