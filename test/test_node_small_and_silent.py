"""issue 17 (4, 7) and 18 (3) in the node: tiny images get output (never an internal numpy message), a node
that receives nothing says so in its log, a depth image in the wrong units is a warning naming the factor,
and without model.weights the node takes the shipped weights of its input kind and logs which and why."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ros_helpers import TopicDriver

from depth_completion_ros.core import conversions
from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.kitti import load_kitti_object_frame
from depth_completion_ros.pipeline import DepthCompletionPipeline, PipelineSettings, run_frame
from depth_completion_ros.ros.problem_log import SilenceWatch
from depth_completion_ros.ros.runtime import NODE_MODULE, RosProcess, module_args, node_arguments


def _crop_camera(camera: CameraModel, top: int, left: int, height: int, width: int) -> CameraModel:
    K = np.asarray(camera.K, dtype=np.float64)
    return CameraModel.from_intrinsics(K[0, 0], K[1, 1], K[0, 2] - left, K[1, 2] - top, width, height)


@pytest.mark.parametrize('height,width', [(1, 1), (1, 2), (1, 64), (64, 1), (2, 2), (3, 5)])
def test_tiny_crops_of_a_real_kitti_frame_are_completed(kitti_object_dir: Path, height: int, width: int) -> None:
    """A 1-pixel-high image made the field-of-view test pad an empty sample ("can't extend empty axis 0"): the
    frame was dropped with numpy's message. Now it is completed like any other, validity on, network on."""
    frame = load_kitti_object_frame(kitti_object_dir, '000003')
    top, left = 300, 600                                    # road in front of the car: LiDAR returns there
    camera = _crop_camera(frame.camera, top, left, height, width)
    rgb = np.ascontiguousarray(frame.rgb[top:top + height, left:left + width])
    pipeline = DepthCompletionPipeline(PipelineSettings(max_range=90.0), device='cpu')
    output = run_frame(pipeline, rgb, camera, frame.points, frame.T_cam_velo)
    assert output.depth.shape == (height, width) and output.used_network
    assert np.isfinite(output.depth).all() and output.prefill_method == 'ipbasic'


def test_silence_watch_names_inputs_that_received_nothing() -> None:
    watch = SilenceWatch(10.0, now=0.0)
    assert watch.silent({'image': 0, 'points': 0}, now=5.0) == {}
    assert watch.silent({'image': 3, 'points': 0}, now=12.0) == {'points': 12.0}      # images came, no cloud
    assert watch.silent({'image': 3, 'points': 1}, now=21.0) == {}                    # image quiet 9 s: fine
    assert watch.silent({'image': 3, 'points': 1}, now=23.0) == {'image': 11.0}


@pytest.mark.ros
@pytest.mark.slow
def test_node_logs_its_weights_choice_silence_and_a_unit_mistake(nyu_dir: Path, tmp_path: Path) -> None:
    from PIL import Image as PILImage
    from sensor_msgs.msg import CameraInfo, Image

    # the rgbd_camera preset names its weights; this is a depth camera without model.weights
    params = {'input_mode': 'depth', 'depth_registered': True, 'min_range': 0.2, 'max_range': 10.0,
              'prefill_only': True, 'model.device': 'cpu'}
    remaps = {'__node': 'dc_small_silent', 'image': '/ss/image', 'camera_info': '/ss/camera_info',
              'depth': '/ss/depth'}
    node = RosProcess('node', module_args(NODE_MODULE, *node_arguments(
        params=params, remaps=remaps)), tmp_path / 'node.log')
    driver = TopicDriver('ss_driver')
    try:
        assert node.wait_for_output('ready:', 90.0), node.output()[-2000:]
        log = node.output()
        assert 'model.weights not set: weights lrru_mini_rgbd (input_mode depth: a depth camera; set ' \
               'model.weights lrru_mini for the other kind)' in log
        # nothing published: the log says so (the watch's time is the node's; the test only waits for the line)
        assert node.wait_for_output('no message received on /ss/image', 60.0), node.output()[-2000:]
        assert '/ss/depth' in node.output()
        # a real Kinect frame whose millimetres were written into 32FC1 (metres by REP 118)
        rgb = np.asarray(PILImage.open(nyu_dir / 'color' / '1.png').convert('RGB'))
        depth_mm = np.asarray(PILImage.open(nyu_dir / 'depth' / '1.pgm')).astype(np.float32)
        camera = CameraModel.from_intrinsics(518.0, 519.0, 325.5, 253.5, 640, 480, frame_id='cam')
        info_pub = driver.publisher(CameraInfo, '/ss/camera_info', 'best_effort')
        image_pub = driver.publisher(Image, '/ss/image', 'best_effort')
        depth_pub = driver.publisher(Image, '/ss/depth', 'best_effort')
        for second in range(1, 30):
            stamp = (second, 0)
            info_pub.publish(camera.to_camera_info(stamp=stamp))
            driver.spin_until(lambda: False, 0.05)
            image_pub.publish(conversions.numpy_to_image(rgb, 'rgb8', frame_id='cam', stamp=stamp))
            depth_pub.publish(conversions.numpy_to_image(depth_mm, '32FC1', frame_id='cam', stamp=stamp))
            if node.wait_for_output('[depth_units', 1.0):
                break
        log = node.output()
        assert "depth image ('32FC1'): 100% of the valid depths are outside [0.2, 10] m" in log, log[-2000:]
        assert 'look 1000x too large' in log
        assert node.popen.poll() is None                       # a warning, not a crash
    finally:
        node.stop(timeout_s=15.0)
        driver.node.destroy_node()
