"""Two-process smoke test through rclpy: a child process publishes an Image, a depth Image and a PointCloud2
built with core.conversions; this process subscribes and decodes them. The environment (shared-memory Fast
DDS, private ROS_DOMAIN_ID, temp log dir) is set by conftest and inherited by the child."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

pytestmark = pytest.mark.ros

TIMEOUT_S = 30.0


def expected_payload() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The data both processes build from the same seed: a KITTI-sized rgb8 image, a 32FC1 depth with holes,
    an organized 40x60 XYZRGB cloud with NaN points."""
    rng = np.random.default_rng(1234)
    rgb = rng.integers(0, 256, (375, 1242, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 80.0, (375, 1242)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.9] = 0.0
    xyz = rng.normal(0.0, 5.0, (40, 60, 3)).astype(np.float32)
    xyz[rng.random((40, 60)) < 0.2] = np.nan
    colours = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    return rgb, depth, xyz, colours


PUBLISHER = textwrap.dedent('''
    import sys, threading
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
    from depth_completion_ros.core.conversions import arrays_to_pointcloud2, metres_to_depth_image, numpy_to_image
    sys.path.insert(0, sys.argv[2])
    from test_ros_pubsub import expected_payload

    prefix = sys.argv[1]
    rgb, depth, xyz, colours = expected_payload()
    rclpy.init()
    node = rclpy.create_node('dcr_pubsub_publisher')
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
    from sensor_msgs.msg import Image, PointCloud2
    publishers = {
        'image': node.create_publisher(Image, prefix + '/image', qos),
        'depth': node.create_publisher(Image, prefix + '/depth', qos),
        'points': node.create_publisher(PointCloud2, prefix + '/points', qos),
    }
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()  # parent closes stdin
    count = 0
    while not stop.is_set():
        stamp = (100, count)
        publishers['image'].publish(numpy_to_image(rgb, 'rgb8', frame_id='camera', stamp=stamp))
        publishers['depth'].publish(metres_to_depth_image(depth, '32FC1', frame_id='camera', stamp=stamp))
        publishers['points'].publish(arrays_to_pointcloud2(xyz, colours, frame_id='camera', stamp=stamp))
        count += 1
        stop.wait(0.1)
    node.destroy_node()
    rclpy.shutdown()
    print('published', count, flush=True)
''')


def test_image_and_pointcloud2_cross_processes() -> None:
    rclpy = pytest.importorskip('rclpy')
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    from depth_completion_ros.core.conversions import depth_image_to_metres, image_to_rgb, pointcloud2_to_arrays

    assert os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', '').startswith('SHM') or \
        os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE') == 'LOCALHOST', 'conftest must keep ROS local'
    prefix = f'/dcr_test_{uuid.uuid4().hex[:8]}'
    received: dict[str, object] = {}

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('dcr_pubsub_subscriber', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
    for name, msg_type in (('image', Image), ('depth', Image), ('points', PointCloud2)):
        node.create_subscription(msg_type, f'{prefix}/{name}',
                                 lambda msg, name=name: received.setdefault(name, msg), qos)
    test_dir = os.path.dirname(os.path.abspath(__file__))
    child = subprocess.Popen([sys.executable, '-c', PUBLISHER, prefix, test_dir], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(received) < 3 and time.monotonic() < deadline and child.poll() is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        try:  # communicate() closes the child's stdin: it shuts down cleanly (no leaked shared-memory segment)
            out, err = child.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert child.returncode == 0, f'publisher failed ({child.returncode}):\n{out}\n{err}'
    assert set(received) == {'image', 'depth', 'points'}, f'received only {sorted(received)}; publisher: {out}{err}'
    assert int(out.split()[-1]) >= 1, out

    rgb, depth, xyz, colours = expected_payload()
    image_msg = received['image']
    assert (image_msg.encoding, image_msg.header.frame_id, image_msg.header.stamp.sec) == ('rgb8', 'camera', 100)
    np.testing.assert_array_equal(image_to_rgb(image_msg), rgb)
    np.testing.assert_array_equal(depth_image_to_metres(received['depth']), depth)
    cloud_msg = received['points']
    assert (cloud_msg.height, cloud_msg.width, cloud_msg.is_dense) == (40, 60, False)
    cloud = pointcloud2_to_arrays(cloud_msg)
    valid = np.isfinite(xyz).all(axis=2)
    np.testing.assert_array_equal(cloud.xyz, xyz[valid])
    np.testing.assert_array_equal(cloud.rgb, colours[valid])
