"""End to end (player -> node -> recorder, subprocesses): camera images as bags really carry them, and the
README's bag snippet delivering every frame of a short bag.

- CompressedImage JPEG (``image_transport: compressed``), yuv422 and bayer_rggb8 bags from ``make-bag
  --image-encoding``: every frame comes out, and the colours of the XYZRGB cloud are the decoded camera image
  (the node runs ``prefill_only``, so the colours are the only place where the decoded image shows);
- the README's "Bags without the ROS CLI" commands, run as written (bag size and ``prefill_only`` aside):
  a 5-frame bag gives 5 depth images in the recorded bag, because ``play --wait-for-subscribers`` holds the
  first message until the node listens.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from depth_completion_ros.data.synthetic import street_sequence
from depth_completion_ros.ros import bagio
from depth_completion_ros.ros.runtime import OUTPUT_NS, RosProcess, parse_final_stats, run_graph
from depth_completion_ros.tools.make_bag import make_bag

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FRAMES, SEED = 160, 64, 3, 11
FAST_PARAMS = {'prefill_only': True, 'model.device': 'cpu'}


def _recorded(out_bag: Path, topic: str) -> dict[int, object]:
    return {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec: m for _r, m in bagio.read_messages(out_bag, [topic])}


@pytest.mark.parametrize('encoding, params, tolerance', [
    ('jpeg', {'image_transport': 'compressed'}, 6.0),
    ('yuv422', {}, 4.0),
    ('bayer_rggb8', {}, 8.0),
])
def test_compressed_yuv422_and_bayer_bags_give_every_frame_with_the_decoded_colours(
        tmp_path: Path, encoding: str, params: dict, tolerance: float) -> None:
    bag = tmp_path / encoding
    make_bag('synthetic', bag, frames=FRAMES, width=WIDTH, height=HEIGHT, seed=SEED, image_encoding=encoding)
    # paced (closed loop, as the demo plays): every frame must come out however loaded the machine is
    result = run_graph(bag, tmp_path / 'out', tmp_path / 'logs', rate=0.5, paced=True,
                       params_files=[bag / bagio.PARAMS_FILE_NAME], params={**FAST_PARAMS, **params})
    assert result['node_status'] == 0, result['node_log'][-2000:]
    assert result['node_stats']['frames_out'] == FRAMES, result['node_log'][-2000:]
    depth = _recorded(tmp_path / 'out', f'{OUTPUT_NS}/depth')
    clouds = _recorded(tmp_path / 'out', f'{OUTPUT_NS}/points')
    confidence = _recorded(tmp_path / 'out', f'{OUTPUT_NS}/confidence')
    assert len(depth) == len(clouds) == FRAMES and sorted(confidence) == sorted(depth)
    for stamp, depth_msg in depth.items():  # ~/confidence: same stamp, frame and size; 0..1, 0 where unknown
        confidence_msg = confidence[stamp]
        assert (confidence_msg.encoding, confidence_msg.header.frame_id, confidence_msg.width,
                confidence_msg.height) == ('32FC1', depth_msg.header.frame_id, depth_msg.width, depth_msg.height)
        values = np.frombuffer(confidence_msg.data.tobytes(), np.float32).reshape(HEIGHT, WIDTH)
        unknown = np.isnan(np.frombuffer(depth_msg.data.tobytes(), np.float32).reshape(HEIGHT, WIDTH))
        assert (values >= 0).all() and (values <= 1).all() and (values[unknown] == 0).all()
        assert values[~unknown].max() > 0.99 and np.median(values[~unknown]) > 0.1
    originals = [frame.rgb for frame in street_sequence(SEED, FRAMES, width=WIDTH, height=HEIGHT)]
    for rgb, stamp in zip(originals, sorted(clouds), strict=True):
        cloud = clouds[stamp]
        points = np.frombuffer(cloud.data.tobytes(), np.float32).reshape(HEIGHT, WIDTH, 4)
        valid = np.isfinite(points[..., 2])
        assert valid.mean() > 0.4
        bits = np.ascontiguousarray(points[..., 3]).view(np.uint32)
        colours = np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(int)
        error = np.abs(colours[valid] - rgb[valid].astype(int)).mean()
        assert error < tolerance, (encoding, error)


def _readme_snippet() -> list[str]:
    """The shell lines of the README's "Bags without the ROS CLI" block (continuations joined)."""
    text = (ROOT / 'README.md').read_text()
    block = re.search(r'### Bags without the ROS CLI\s+```bash\n(.*?)```', text, re.S)
    assert block, 'README lost its "Bags without the ROS CLI" snippet'
    joined = block.group(1).replace('\\\n', ' ')
    return [line.split('  #')[0].strip() for line in joined.splitlines() if line.strip()]


def test_readme_bag_snippet_delivers_every_frame_of_a_short_bag(tmp_path: Path) -> None:
    from ros_helpers import TopicDriver
    from sensor_msgs.msg import Image

    lines = _readme_snippet()
    assert [line.split()[1] for line in lines] == ['make-bag', 'node', 'record', 'play']
    processes: list[RosProcess] = []

    def start(index: int, line: str, extra: list[str]) -> RosProcess:
        line = line.replace('/tmp/street', str(tmp_path / 'street')).replace('/tmp/out', str(tmp_path / 'out'))
        words = shlex.split(line)
        background = words[-1] == '&'
        words = [w for w in words if w != '&']
        assert words[0] == 'depth-completion' and background == (words[1] in ('node', 'record')), line
        process = RosProcess(words[1], ['-m', 'depth_completion_ros.cli', *words[1:], *extra],
                             tmp_path / f'{index}_{words[1]}.log', cwd=ROOT)
        processes.append(process)
        return process

    watcher = TopicDriver('snippet_watcher')  # counts the outputs independently of the recorder
    watcher.subscribe('depth', Image, f'{OUTPUT_NS}/depth')
    try:
        make = start(0, lines[0], ['--frames', '5', '--width', '320', '--height', '96'])  # a short, small bag
        assert make.wait(120) == 0, make.output()
        node = start(1, lines[1], ['-p', 'prefill_only:=true', '-p', 'model.device:=cpu'])
        recorder = start(2, lines[2], [])
        player = start(3, lines[3], [])  # at once, as the snippet does: it must wait for the node to listen
        assert player.wait(180) == 0, player.output() + node.output()[-1500:]
        assert 'play: subscribed after' in player.output(), player.output()
        watcher.spin_until(lambda: len(watcher.received['depth']) >= 5, 60.0)
        watcher.spin_until(lambda: False, 1.0)  # the recorder gets the last frame's messages too
        assert recorder.stop(timeout_s=15) == 0, recorder.output()
        assert node.stop(timeout_s=15) == 0, node.output()[-1500:]
        stats = parse_final_stats(node.output())
        images = _recorded(tmp_path / 'street', bagio.IMAGE_TOPIC)
        assert len(images) == 5
        # 5 of 5 reached the node (the start-up race lost all of them before); on a machine too loaded for the
        # node to keep up with --rate 0.2 a frame may be dropped as busy (a newer one replaced it), never lost
        assert (stats['images_in'], stats['depth_in']) == (5, 5), stats
        assert stats['frames_out'] + stats['dropped_busy'] == 5 and stats['frames_out'] >= 3, stats
        assert len(watcher.received['depth']) == stats['frames_out']
        assert sorted(_recorded(tmp_path / 'out', f'{OUTPUT_NS}/depth')) == sorted(watcher.received['depth'])
    finally:
        watcher.close()
        for process in processes:
            if process.returncode is None:
                process.stop(timeout_s=5)


def test_node_projects_into_a_raw_distorted_image_where_opencv_does_and_says_so_once(tmp_path: Path) -> None:
    import cv2
    from ros_helpers import TopicDriver, start_node
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from depth_completion_ros.core import conversions
    from depth_completion_ros.core.camera import CameraModel

    K = np.array([[110.0, 0.0, 80.3], [0.0, 108.0, 59.6], [0.0, 0.0, 1.0]])
    D = np.array([-0.3, 0.09, 0.001, -0.002, -0.01])
    camera = CameraModel(width=160, height=120, K=K, P=np.hstack([K, np.zeros((3, 1))]), D=D,
                         distortion_model='plumb_bob', frame_id='wide')
    xs, ys = np.meshgrid(np.linspace(-2.6, 2.6, 9), np.linspace(-1.9, 1.9, 7))
    points = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 4.0)], 1)  # a wall 4 m ahead, to the corners
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, D)
    columns, rows = np.floor(expected.reshape(-1, 2) + 0.5).astype(int).T
    inside = (columns >= 0) & (columns < 160) & (rows >= 0) & (rows < 120)
    assert inside.sum() > 40
    pinhole = (points @ K.T)[:, :2] / points[:, 2:]
    assert np.abs(pinhole - expected.reshape(-1, 2)).max() > 10  # the lens moves the corner points by > 10 px

    node = start_node(tmp_path / 'node.log', params={**FAST_PARAMS, 'publish_debug': True},
                      remaps={'image': '/wide/image_raw', 'camera_info': '/wide/camera_info', 'points': '/wide/points'})
    driver = TopicDriver('distortion_driver')
    try:
        publishers = [driver.publisher(CameraInfo, '/wide/camera_info'), driver.publisher(Image, '/wide/image_raw'),
                      driver.publisher(PointCloud2, '/wide/points')]
        driver.subscribe('sparse', Image, f'{OUTPUT_NS}/debug/sparse')
        driver.wait_matched(publishers, node)
        for second in (10, 11):
            stamp = (second, 0)
            publishers[0].publish(camera.to_camera_info(stamp=stamp))
            publishers[1].publish(conversions.numpy_to_image(np.full((120, 160, 3), 90, np.uint8), 'rgb8',
                                                             frame_id='wide', stamp=stamp))
            publishers[2].publish(conversions.arrays_to_pointcloud2(points.astype(np.float32), frame_id='wide',
                                                                    stamp=stamp))
            assert driver.expect_output(second * 10**9, ('sparse',), 20.0), node.output()[-1500:]
        sparse = np.frombuffer(driver.received['sparse'][11 * 10**9].data, np.float32).reshape(120, 160)
        landed = np.zeros((120, 160), bool)
        landed[rows[inside], columns[inside]] = True
        np.testing.assert_array_equal(np.nan_to_num(sparse) > 0, landed)  # every point on OpenCV's pixel
        assert node.output().count("camera 'wide': camera_info has plumb_bob distortion") == 1
    finally:
        driver.close()
        node.stop()
