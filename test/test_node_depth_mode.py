"""End to end, ``input_mode: depth`` (RGB-D / Kinect / ToF): the node runs as a subprocess with the
``config/rgbd_camera.yaml`` preset, this process publishes REAL Kinect frames (../shared/data/nyu_kinect_slambook:
colour PNG + depth PGM in millimetres registered to colour) and checks what comes out.

Two nodes run side by side, as a user would start them (preset + remaps + a few ``-p`` overrides):
- ``rgbd_registered``: the preset as shipped (depth registered to colour), ``cloud.stride`` 1;
- ``rgbd_unregistered``: ``depth_registered: false`` with its own ``depth/camera_info`` and a 5 cm baseline
  given through ``extrinsics.translation``; the preset's ``cloud.stride`` 2.
Both run ``prefill_only`` (the real ip_basic fill, no network: the network is not what is tested here) and
``publish_debug`` (``~/debug/sparse`` shows the measurements the node completed from, before any filling).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import TopicDriver
from scipy import ndimage

from depth_completion_ros.core import conversions
from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import backproject, register_depth
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.ros.runtime import (
    NODE_MODULE,
    RosProcess,
    find_config,
    module_args,
    node_arguments,
    parse_final_stats,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

COLOR_FRAME = 'camera_color_optical_frame'
DEPTH_FRAME = 'camera_depth_optical_frame'   # differs from the colour frame: outputs must carry the colour one
# Colour camera of the NYU Kinect frames (README of the data); the depth PGMs are registered to it.
COLOR_CAMERA = CameraModel.from_intrinsics(518.0, 519.0, 325.5, 253.5, 640, 480, frame_id=COLOR_FRAME)
# The non-registered case: a 320x240 depth camera (every second pixel of the Kinect depth), 5 cm to the left of
# the colour camera: p_color = p_depth + (0.05, 0, 0).
DEPTH_CAMERA = CameraModel.from_intrinsics(259.0, 259.5, 162.75, 126.75, 320, 240, frame_id=DEPTH_FRAME)
BASELINE_M = 0.05
T_COLOR_DEPTH = RigidTransform.from_quaternion(np.array([BASELINE_M, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]))
DEPTH_STAMP_OFFSET_NS = 4_000_000            # depth 4 ms after colour: within the preset's sync.slop (0.02 s)
MIN_RANGE, MAX_RANGE = 0.2, 10.0             # the preset's range
FAST = {'prefill_only': True, 'model.device': 'cpu', 'publish_debug': True}
OUTPUTS = ('depth', 'camera_info', 'points', 'sparse')
FRAME_TIMEOUT_S = 20.0


@dataclass
class KinectFrame:
    rgb: np.ndarray        # 480x640x3 uint8
    depth_mm: np.ndarray   # 480x640 uint16, 0 = no measurement


@pytest.fixture(scope='module')
def kinect_frames(nyu_dir: Path) -> list[KinectFrame]:
    from PIL import Image as PILImage

    frames = []
    for index in range(1, 6):
        rgb = np.asarray(PILImage.open(nyu_dir / 'color' / f'{index}.png').convert('RGB'))
        depth = np.asarray(PILImage.open(nyu_dir / 'depth' / f'{index}.pgm'))  # 16-bit PGM, read as int32
        assert rgb.shape == (480, 640, 3) and depth.shape == (480, 640) and 0 <= depth.min() <= depth.max() < 2**16
        frames.append(KinectFrame(rgb, depth.astype(np.uint16)))
    return frames


def _metres(depth_mm: np.ndarray) -> np.ndarray:
    return depth_mm.astype(np.float64) / 1000.0


def _in_range(depth_m: np.ndarray) -> np.ndarray:
    """The node's sparse depth from a depth image: 0 outside [min_range, max_range]."""
    return np.where((depth_m >= MIN_RANGE) & (depth_m <= MAX_RANGE), depth_m, 0.0)


# --------------------------------------------------------------------------------------------------------------
# Two nodes (registered / non-registered depth) and one driver in this process
# --------------------------------------------------------------------------------------------------------------

NODES = {
    'registered': ({'cloud.stride': 1}, False),
    'unregistered': ({'depth_registered': False, 'extrinsics.translation': [BASELINE_M, 0.0, 0.0]}, True),
}


class RgbdDriver(TopicDriver):
    """Publishes colour + camera_info + depth (+ depth/camera_info) to each node; keeps its outputs."""

    def __init__(self) -> None:
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        super().__init__('rgbd_driver')
        self.pubs: dict[str, dict[str, object]] = {}
        for name, (_params, with_depth_info) in NODES.items():
            pubs = {'camera_info': self.publisher(CameraInfo, f'/{name}/color/camera_info'),
                    'image': self.publisher(Image, f'/{name}/color/image_raw'),
                    'depth': self.publisher(Image, f'/{name}/depth/image_raw')}
            if with_depth_info:
                pubs['depth/camera_info'] = self.publisher(CameraInfo, f'/{name}/depth/camera_info')
            self.pubs[name] = pubs
            out = f'/rgbd_{name}'
            self.subscribe(f'{name}/depth', Image, f'{out}/depth')
            self.subscribe(f'{name}/camera_info', CameraInfo, f'{out}/camera_info')
            self.subscribe(f'{name}/points', PointCloud2, f'{out}/points')
            self.subscribe(f'{name}/sparse', Image, f'{out}/debug/sparse')
        self.stamp_s = 1_700_000_000
        self.bad_frames = dict.fromkeys(NODES, 0)  # frames sent malformed on purpose, per node

    def send(self, name: str, rgb: np.ndarray, depth: np.ndarray, encoding: str,
             depth_camera: CameraModel | None = None) -> int:
        """One frame: camera_info(s) first, then colour, then depth 4 ms later. Returns the colour stamp (ns)."""
        self.stamp_s += 1
        stamp, depth_stamp = (self.stamp_s, 0), (self.stamp_s, DEPTH_STAMP_OFFSET_NS)
        pubs = self.pubs[name]
        pubs['camera_info'].publish(COLOR_CAMERA.to_camera_info(stamp=stamp))
        if depth_camera is not None:
            pubs['depth/camera_info'].publish(depth_camera.to_camera_info(stamp=depth_stamp))
        self.spin_until(lambda: False, 0.1)  # camera_infos are cached before the pair completes
        pubs['image'].publish(conversions.numpy_to_image(rgb, 'rgb8', frame_id=COLOR_FRAME, stamp=stamp))
        pubs['depth'].publish(conversions.numpy_to_image(depth, encoding, frame_id=DEPTH_FRAME, stamp=depth_stamp))
        return self.stamp_s * 10**9

    def outputs(self, name: str, stamp: int, timeout_s: float = FRAME_TIMEOUT_S) -> dict[str, object]:
        keys = tuple(f'{name}/{k}' for k in OUTPUTS)
        assert self.expect_output(stamp, keys, timeout_s), f'no output from rgbd_{name} for stamp {stamp}'
        self.spin_until(lambda: False, 0.05)
        return {k: self.received[f'{name}/{k}'][stamp] for k in OUTPUTS}


@pytest.fixture(scope='module')
def rgbd(tmp_path_factory: pytest.TempPathFactory):
    """Both nodes started at once (they load in parallel), then the driver; SIGINT at the end."""
    log_dir = tmp_path_factory.mktemp('rgbd_nodes')
    processes = {}
    for name, (params, with_depth_info) in NODES.items():
        remaps = {'__node': f'rgbd_{name}', 'image': f'/{name}/color/image_raw',
                  'camera_info': f'/{name}/color/camera_info', 'depth': f'/{name}/depth/image_raw'}
        if with_depth_info:
            remaps['depth/camera_info'] = f'/{name}/depth/camera_info'
        processes[name] = RosProcess(name, module_args(NODE_MODULE, *node_arguments(
            params_files=[find_config('rgbd_camera')], params={**FAST, **params}, remaps=remaps)),
            log_dir / f'{name}.log')
    try:
        for name, process in processes.items():
            assert process.wait_for_output('ready:', 90.0), f'{name}: {process.output()[-2000:]}'
            assert 'input_mode=depth' in process.output()
        driver = RgbdDriver()
        for name, process in processes.items():
            driver.wait_matched(list(driver.pubs[name].values()), process)
        yield driver, processes
        driver.close()
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.stop(timeout_s=15.0)


def _depth_of(msg) -> np.ndarray:
    assert msg.encoding == '32FC1'
    return np.asarray(conversions.image_to_numpy(msg), dtype=np.float32)


def _check_header(outputs: dict[str, object], stamp: int, width: int, height: int) -> None:
    for key in OUTPUTS:
        msg = outputs[key]
        assert msg.header.frame_id == COLOR_FRAME, (key, msg.header.frame_id)  # the colour camera's, not the depth's
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp, key  # the colour image's stamp
    assert (outputs['depth'].width, outputs['depth'].height) == (width, height)
    assert (outputs['camera_info'].width, outputs['camera_info'].height) == (width, height)
    assert tuple(outputs['camera_info'].k) == tuple(COLOR_CAMERA.K.ravel())


def _check_cloud(cloud_msg, depth: np.ndarray, stride: int) -> None:
    """Organized cloud over the (strided) pixel grid, NaN exactly where the depth is unknown."""
    expected_depth = depth[::stride, ::stride]
    assert (cloud_msg.height, cloud_msg.width) == expected_depth.shape and not cloud_msg.is_dense
    points = conversions.cloud_structured_view(cloud_msg)
    xyz = np.stack([points['x'], points['y'], points['z']], axis=-1).astype(np.float32)
    unknown = np.isnan(expected_depth)
    assert np.array_equal(np.isnan(xyz[..., 2]), unknown)
    assert np.isnan(xyz[unknown]).all()
    expected = backproject(np.nan_to_num(depth), COLOR_CAMERA)[::stride, ::stride]
    np.testing.assert_allclose(xyz[~unknown], expected[~unknown], rtol=1e-5, atol=1e-6)


def _check_close_to_measurements(depth: np.ndarray, measured_m: np.ndarray) -> None:
    """The dense output at measured pixels matches the measurement in metres. ip_basic's nearest-depth dilation
    and final blur move measured pixels at depth edges and on slopes by about 2 cm (median 0.7 %, see
    test_pipeline), so the bound is statistical; a mm/m slip is off by a factor of 1000 (or all unknown)."""
    measured = measured_m > 0
    assert measured.sum() > 10_000
    assert np.isfinite(depth[measured]).mean() > 0.999
    relative = np.abs(depth[measured] - measured_m[measured]) / measured_m[measured]
    assert np.nanmedian(relative) < 0.015, np.nanmedian(relative)
    assert np.mean(relative < 0.05) > 0.9, np.mean(relative < 0.05)


# --------------------------------------------------------------------------------------------------------------
# (1) + (2) registered depth: 16UC1 millimetres and 32FC1 metres
# --------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def registered_run(rgbd, kinect_frames):
    """Every Kinect frame as 16UC1 mm, then the first two again as 32FC1 m (NaN = no measurement), paced: the
    next pair goes out once the previous one's outputs arrived (a slower node drops, never queues)."""
    driver, _processes = rgbd
    results = {'16UC1': [], '32FC1': []}
    for frame in kinect_frames:
        stamp = driver.send('registered', frame.rgb, frame.depth_mm, '16UC1')
        results['16UC1'].append((stamp, driver.outputs('registered', stamp)))
    for frame in kinect_frames[:2]:
        metres = np.where(frame.depth_mm > 0, frame.depth_mm.astype(np.float32) / np.float32(1000.0), np.nan)
        stamp = driver.send('registered', frame.rgb, metres.astype(np.float32), '32FC1')
        results['32FC1'].append((stamp, driver.outputs('registered', stamp)))
    return results


def test_registered_16uc1_millimetres_every_pair_gives_metres_in_the_colour_frame(registered_run,
                                                                                  kinect_frames) -> None:
    assert len(registered_run['16UC1']) == len(kinect_frames)
    for (stamp, outputs), frame in zip(registered_run['16UC1'], kinect_frames, strict=True):
        _check_header(outputs, stamp, 640, 480)
        depth = _depth_of(outputs['depth'])
        measured_m = _in_range(_metres(frame.depth_mm))
        # the measurements the node completed from are the Kinect's, in metres, pixel for pixel
        sparse = _depth_of(outputs['sparse'])
        np.testing.assert_allclose(np.nan_to_num(sparse), measured_m, rtol=1e-6, atol=1e-7)
        _check_close_to_measurements(depth, measured_m)
        assert 0.9 < np.nanmedian(depth) < 5.0                      # a room, in metres (README: medians 2.7-3.2 m)
        # completed where a measurement is near and below the highest one of the column; unknown (NaN) where
        # none is within validity.max_distance_px (15 px in the preset: the registration border on the left
        # and top, windows, large shadows) or above the highest measurement within 3 columns
        distance = ndimage.distance_transform_edt(measured_m <= 0)
        measured = measured_m > 0
        top = np.where(measured.any(axis=0), np.argmax(measured, axis=0), 480)
        top = ndimage.minimum_filter1d(top, 2 * 3 + 1, mode='constant', cval=480)  # validity.column_window_px: 3
        below_top = np.arange(480)[:, None] >= top[None, :]
        assert not np.isnan(depth[(distance <= 14) & below_top]).any()
        assert np.isnan(depth[(distance > 16) | ~below_top]).all()
        assert np.isnan(depth).mean() < 0.3
        _check_cloud(outputs['points'], depth, stride=1)


def test_registered_32fc1_metres_gives_the_same_output_as_16uc1(registered_run) -> None:
    for (_s1, mm_out), (stamp, m_out) in zip(registered_run['16UC1'], registered_run['32FC1'], strict=False):
        _check_header(m_out, stamp, 640, 480)
        # mm * 0.001 and the float32 metres may differ in the last bit; the prefill (which works on depth
        # inverted around max_depth) turns that into at most a few hundredths of a millimetre
        for key, atol in (('sparse', 1e-6), ('depth', 1e-4)):
            from_mm, from_m = _depth_of(mm_out[key]), _depth_of(m_out[key])
            assert np.array_equal(np.isnan(from_mm), np.isnan(from_m)), key
            np.testing.assert_allclose(from_m, from_mm, rtol=0, atol=atol, err_msg=key)


# --------------------------------------------------------------------------------------------------------------
# (3) non-registered depth: own camera_info + extrinsics -> registered into the colour camera
# --------------------------------------------------------------------------------------------------------------

def test_unregistered_depth_is_registered_into_the_colour_camera_with_the_extrinsics(rgbd, kinect_frames) -> None:
    driver, _processes = rgbd
    frame = kinect_frames[0]
    depth_mm = np.ascontiguousarray(frame.depth_mm[::2, ::2])      # the 320x240 depth camera's image
    stamp = driver.send('unregistered', frame.rgb, depth_mm, '16UC1', depth_camera=DEPTH_CAMERA)
    outputs = driver.outputs('unregistered', stamp)
    _check_header(outputs, stamp, 640, 480)

    depth_m = depth_mm.astype(np.float32) * np.float32(0.001)
    expected = _in_range(np.asarray(register_depth(depth_m, DEPTH_CAMERA, COLOR_CAMERA, T_COLOR_DEPTH)))
    sparse = np.nan_to_num(_depth_of(outputs['sparse']))
    np.testing.assert_allclose(sparse, expected, rtol=1e-6, atol=1e-7)

    # the geometry, by hand: p_color = p_depth + (0.05, 0, 0), so a depth pixel (u, v) at z lands at column
    # 2u + fx_color * 0.05 / z (shifted right, more for near points) and row 2v (no rotation; the colour camera
    # has twice the depth camera's focal lengths and principal point)
    v, u = np.nonzero((depth_m >= MIN_RANGE) & (depth_m <= MAX_RANGE))
    z = depth_m[v, u].astype(np.float64)
    shift = COLOR_CAMERA.fx * BASELINE_M / z
    assert 5.0 < np.median(shift) < 15.0                           # ~9 px at 3 m: a shift the test can see
    column = np.floor(COLOR_CAMERA.fx / DEPTH_CAMERA.fx * (u - DEPTH_CAMERA.cx) + COLOR_CAMERA.cx + shift + 0.5)
    row = 2 * v
    inside = column < 640
    landed = sparse[row[inside], column[inside].astype(int)]
    # the z-buffer lets a nearer point win a few pixels (occlusions in the shifted view); everything else is exact
    assert np.mean(landed == z[inside].astype(np.float32)) > 0.95
    assert np.all(landed[landed > 0] <= z[inside][landed > 0] + 1e-6)
    # without the extrinsics (or with them inverted) the measurements would sit ~9 px to the left of that
    assert np.mean(sparse[row, 2 * u] == z.astype(np.float32)) < 0.2

    # the dense output follows the registered measurements, and the cloud is the preset's stride 2 grid
    depth = _depth_of(outputs['depth'])
    _check_close_to_measurements(depth, expected)
    _check_cloud(outputs['points'], depth, stride=2)


# --------------------------------------------------------------------------------------------------------------
# (4) depth image and camera_info disagree: dropped with a warning, the next good frame is processed
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name, bad_size, depth_camera, warning', [
    # registered: the depth must have the colour camera_info's size
    ('registered', (320, 240), None, 'registered depth is 320x240 but the camera is 640x480'),
    # not registered: the depth must have its own camera_info's size
    ('unregistered', (640, 480), DEPTH_CAMERA, 'depth image is 640x480 but its camera_info says 320x240'),
])
def test_depth_size_differs_from_camera_info_dropped_with_warning_then_next_frame_processed(
        rgbd, kinect_frames, name, bad_size, depth_camera, warning) -> None:
    driver, processes = rgbd
    process = processes[name]
    frame = kinect_frames[1]
    full = frame.depth_mm
    bad = full if bad_size == (640, 480) else np.ascontiguousarray(full[::2, ::2])
    bad_stamp = driver.send(name, frame.rgb, bad, '16UC1', depth_camera=depth_camera)
    driver.bad_frames[name] += 1
    assert driver.spin_until(lambda: warning in process.output(), 15.0), process.output()[-1500:]
    assert process.returncode is None, f'rgbd_{name} died on a bad depth size'
    good = full if depth_camera is None else np.ascontiguousarray(full[::2, ::2])
    good_stamp = driver.send(name, frame.rgb, good, '16UC1', depth_camera=depth_camera)
    outputs = driver.outputs(name, good_stamp)
    _check_header(outputs, good_stamp, 640, 480)
    assert not any(bad_stamp in driver.received[f'{name}/{key}'] for key in OUTPUTS)


def test_nodes_shut_down_cleanly_with_every_frame_accounted_for(rgbd) -> None:
    driver, processes = rgbd
    time.sleep(0.2)
    for name, process in processes.items():
        status = process.stop(timeout_s=15.0)
        log = process.output()
        assert status == 0 and 'Traceback' not in log, log[-2000:]
        stats = parse_final_stats(log)
        produced = len(driver.received[f'{name}/depth'])
        assert stats['frames_out'] == produced and stats['images_in'] == stats['depth_in'], stats
        assert stats['dropped_invalid'] == driver.bad_frames[name] and stats['dropped_busy'] == 0, stats
        assert stats['dropped_no_camera_info'] == 0 and stats['dropped_error'] == 0, stats
