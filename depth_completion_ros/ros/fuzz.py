"""Seeded malformed input for the node, between real frames: the fuzz test and ``bench soak`` share it.

A :class:`MalformedMix` makes *defective frames*: camera_info + image + cloud at one stamp where one part has
one defect of a known class (bad encodings, strides, sizes, empty/NaN/huge clouds, broken field layouts,
uncalibrated or enormous camera_infos, made-up and huge frame_ids, zero stamps, older camera_infos, ...), or
a valid message serialized to CDR with bytes flipped, cut or appended (published as raw bytes, the node's
middleware deserializes it or drops it). Each round of :class:`FuzzDriver` publishes a burst of them, then
one real frame, and waits for the real frame's outputs.

Stamps keep the real frames answerable whatever the defects: the defective frames of a burst have increasing
stamps strictly between the previous real frame and the next (more than the sync slop away from both), and a
byte mutation of an image or cloud never touches its header; stamps that jump back in time (a bag loop) come
in their own burst, which :meth:`FuzzDriver.jump_back` lets the node digest (it counts the sync resets on
/diagnostics) before the next real frame.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from depth_completion_ros.core import conversions
from depth_completion_ros.core.camera import CameraModel

NS_PER_S = 1_000_000_000
REAL_FRAME_ID = 'cam'
TOPIC_KEYS = ('camera_info', 'image', 'points')


@dataclass
class RealFrame:
    """A real camera + LiDAR frame (points in the sensor frame) and the sensor->camera matrix."""
    camera: CameraModel
    rgb: np.ndarray
    points: np.ndarray
    T_cam_sensor: np.ndarray  # 4x4

    @classmethod
    def from_kitti(cls, root: Any, frame_id: str = '000003', scale: float = 1.0) -> RealFrame:
        from depth_completion_ros.core.kitti import load_kitti_object_frame

        frame = load_kitti_object_frame(root, frame_id)
        camera = CameraModel(frame.camera.width, frame.camera.height, frame.camera.K, frame.camera.P,
                             frame_id=REAL_FRAME_ID)
        rgb = frame.rgb
        if scale != 1.0:
            step = int(round(1.0 / scale))
            camera = camera.scaled(1.0 / step)
            rgb = np.ascontiguousarray(rgb[::step, ::step][:camera.height, :camera.width])
        return cls(camera, rgb, np.ascontiguousarray(frame.points[:, :3]), frame.T_cam_velo.matrix)

    def node_params(self) -> dict[str, Any]:
        return {'extrinsics.source': 'parameters',
                'extrinsics.matrix': [float(v) for v in np.asarray(self.T_cam_sensor).ravel()]}


def _stamp(stamp_ns: int) -> tuple[int, int]:
    return stamp_ns // NS_PER_S, stamp_ns % NS_PER_S


class MalformedMix:
    """Defective frames of every class, drawn with a seeded generator (``counts`` says how many of each)."""

    def __init__(self, frame: RealFrame, seed: int = 0) -> None:
        from rclpy.serialization import serialize_message

        self.frame = frame
        self.rng = np.random.default_rng(seed)
        self.counts: Counter[str] = Counter()
        self._serialize = serialize_message
        # small valid pieces to break (a full-size image per defect would only cost bandwidth)
        self.small_camera = frame.camera.scaled(0.25)
        self.small_rgb = np.ascontiguousarray(frame.rgb[::4, ::4][:self.small_camera.height,
                                                                  :self.small_camera.width])
        self.small_points = frame.points[self.rng.choice(len(frame.points), 2000)].astype(np.float32)
        self.classes: dict[str, Callable[[int], list[tuple[str, Any]]]] = {
            name.removeprefix('_defect_'): getattr(self, name) for name in dir(self) if name.startswith('_defect_')}
        self.weights = np.array([0.3 if name in ('huge_frame_id', 'huge_distortion', 'long_encoding') else 1.0
                                 for name in self.classes])
        self.weights /= self.weights.sum()

    # ---------------------------------------------------------------------------------------------- valid parts
    def info(self, stamp_ns: int, camera: CameraModel | None = None, frame_id: str = REAL_FRAME_ID) -> Any:
        msg = (camera or self.small_camera).to_camera_info(stamp=_stamp(stamp_ns))
        msg.header.frame_id = frame_id
        return msg

    def image(self, stamp_ns: int, rgb: np.ndarray | None = None, frame_id: str = REAL_FRAME_ID) -> Any:
        return conversions.numpy_to_image(self.small_rgb if rgb is None else rgb, 'rgb8', frame_id=frame_id,
                                          stamp=_stamp(stamp_ns))

    def cloud(self, stamp_ns: int, points: np.ndarray | None = None, frame_id: str = 'velodyne') -> Any:
        return conversions.arrays_to_pointcloud2(self.small_points if points is None else points,
                                                 frame_id=frame_id, stamp=_stamp(stamp_ns))

    def valid(self, stamp_ns: int) -> list[tuple[str, Any]]:
        return [('camera_info', self.info(stamp_ns)), ('image', self.image(stamp_ns)),
                ('points', self.cloud(stamp_ns))]

    def real(self, stamp_ns: int) -> list[tuple[str, Any]]:
        """The real frame at ``stamp_ns`` (camera_info first, as most drivers publish)."""
        f = self.frame
        return [('camera_info', self.info(stamp_ns, f.camera)), ('image', self.image(stamp_ns, f.rgb)),
                ('points', self.cloud(stamp_ns, f.points.astype(np.float32)))]

    # ---------------------------------------------------------------------------------------------- a burst
    def defective_frame(self, stamp_ns: int) -> list[tuple[str, Any]]:
        name = str(self.rng.choice(list(self.classes), p=self.weights))
        self.counts[name] += 1
        return self.classes[name](stamp_ns)

    def burst(self, count: int, after_ns: int, before_ns: int) -> list[tuple[str, Any]]:
        """``count`` defective frames with increasing stamps strictly inside (after_ns, before_ns)."""
        stamps = np.linspace(after_ns, before_ns, count + 2)[1:-1].astype(np.int64)
        return [part for stamp in stamps for part in self.defective_frame(int(stamp))]

    def jump_back(self, stamp_ns: int) -> list[tuple[str, Any]]:
        """A valid frame far in the past (bag loop, restarted driver): the node resets its sync."""
        self.counts['time_jump'] += 1
        return self.valid(stamp_ns)

    def _text(self, length: int) -> str:
        return ''.join(self.rng.choice(list('abcdefghXYZ0123456789_/'), length))

    def _replace(self, parts: list[tuple[str, Any]], key: str, msg: Any) -> list[tuple[str, Any]]:
        return [(k, msg if k == key else m) for k, m in parts]

    # ---------------------------------------------------------------------------------------------- images
    def _defect_random_encoding(self, t: int) -> list:
        msg = self.image(t)
        msg.encoding = self._text(int(self.rng.integers(1, 24)))
        return self._replace(self.valid(t), 'image', msg)

    def _defect_long_encoding(self, t: int) -> list:
        msg = self.image(t)
        msg.encoding = self._text(20_000)
        return self._replace(self.valid(t), 'image', msg)

    def _defect_depth_encoding_as_image(self, t: int) -> list:
        msg = conversions.numpy_to_image(np.ones((self.small_camera.height, self.small_camera.width), np.float32),
                                         '32FC1', frame_id=REAL_FRAME_ID, stamp=_stamp(t))
        return self._replace(self.valid(t), 'image', msg)

    def _defect_step_too_small(self, t: int) -> list:
        msg = self.image(t)
        msg.step = int(self.rng.integers(0, msg.step))
        return self._replace(self.valid(t), 'image', msg)

    def _image_or_cloud(self, t: int) -> tuple[str, Any]:
        key = str(self.rng.choice(['image', 'points']))
        return key, self.image(t) if key == 'image' else self.cloud(t)

    def _defect_data_short(self, t: int) -> list:
        key, msg = self._image_or_cloud(t)
        msg.data = bytes(msg.data)[:int(self.rng.integers(0, len(msg.data)))]
        return self._replace(self.valid(t), key, msg)

    def _defect_huge_claim(self, t: int) -> list:
        """Width and height (and step / row_step) far beyond the data: must not allocate or index by them."""
        key, msg = self._image_or_cloud(t)
        msg.width, msg.height = int(self.rng.integers(1, 2**31)), int(self.rng.integers(1, 2**31))
        if key == 'image':
            msg.step = int(self.rng.integers(0, 2**32))
        else:
            msg.row_step = int(self.rng.integers(0, 2**32))
        return self._replace(self.valid(t), key, msg)

    def _defect_image_zero_size(self, t: int) -> list:
        msg = self.image(t)
        msg.width = msg.height = msg.step = 0
        msg.data = b''
        return self._replace(self.valid(t), 'image', msg)

    def _defect_size_mismatch(self, t: int) -> list:
        bigger = self.small_camera.scaled(1.5)
        return self._replace(self.valid(t), 'camera_info', self.info(t, bigger))

    def _defect_unknown_frame_id(self, t: int) -> list:
        frame_id = self._text(int(self.rng.integers(1, 40)))
        return self._replace(self.valid(t), 'image', self.image(t, frame_id=frame_id))

    def _defect_huge_frame_id(self, t: int) -> list:
        frame_id = self._text(1_000_000)
        return [('camera_info', self.info(t, frame_id=frame_id)), ('image', self.image(t, frame_id=frame_id)),
                ('points', self.cloud(t))]

    def _defect_zero_stamp(self, t: int) -> list:
        side = str(self.rng.choice(['image', 'points']))
        return self._replace(self.valid(t), side, self.image(0) if side == 'image' else self.cloud(0))

    # ---------------------------------------------------------------------------------------------- clouds
    def _defect_empty_cloud(self, t: int) -> list:
        return self._replace(self.valid(t), 'points', self.cloud(t, np.zeros((0, 3), np.float32)))

    def _defect_nan_cloud(self, t: int) -> list:
        points = np.full((500, 3), np.nan, np.float32)
        points[::3, 1] = np.inf
        return self._replace(self.valid(t), 'points', self.cloud(t, points))

    def _defect_huge_coordinates(self, t: int) -> list:
        points = self.small_points.copy()
        with np.errstate(over='ignore'):
            points[::2] *= np.float32(1e37)  # some overflow to inf
        points[1::4, 2] = np.float32(1e-40)  # denormal depth
        return self._replace(self.valid(t), 'points', self.cloud(t, points))

    def _defect_point_step_broken(self, t: int) -> list:
        msg = self.cloud(t)
        msg.point_step = int(self.rng.choice([0, 1, 3, msg.point_step + 1, 2**31]))
        return self._replace(self.valid(t), 'points', msg)

    def _defect_cloud_fields_broken(self, t: int) -> list:
        msg = self.cloud(t)
        fields = list(msg.fields)
        choice = int(self.rng.integers(0, 4))
        if choice == 0:
            fields = [f for f in fields if f.name != 'z']           # no z
        elif choice == 1:
            fields[0].datatype = int(self.rng.integers(9, 256))     # unknown datatype
        elif choice == 2:
            fields[1].offset = int(self.rng.integers(13, 2**31))    # field beyond the point
        else:
            fields[2].count = 0
        msg.fields = fields
        return self._replace(self.valid(t), 'points', msg)

    # ---------------------------------------------------------------------------------------------- camera_info
    def _defect_uncalibrated(self, t: int) -> list:
        msg = self.info(t)
        msg.k = [0.0] * 9
        msg.p = [0.0] * 12
        return self._replace(self.valid(t), 'camera_info', msg)

    def _defect_non_finite_k(self, t: int) -> list:
        msg = self.info(t)
        k = list(msg.k)
        k[int(self.rng.choice([0, 2, 4, 5]))] = float(self.rng.choice([np.nan, np.inf, -np.inf]))
        msg.k = k
        return self._replace(self.valid(t), 'camera_info', msg)

    def _defect_huge_distortion(self, t: int) -> list:
        msg = self.info(t)
        msg.d = self.rng.normal(size=int(self.rng.choice([15, 1000, 100_000]))).tolist()
        return self._replace(self.valid(t), 'camera_info', msg)

    def _defect_roi_binning_broken(self, t: int) -> list:
        msg = self.info(t)
        if self.rng.integers(0, 2):
            msg.roi.x_offset, msg.roi.width = msg.width - 2, 50
            msg.roi.height = 10
        else:
            msg.binning_x = int(self.rng.integers(msg.width + 1, 2**31))
        return self._replace(self.valid(t), 'camera_info', msg)

    def _defect_camera_info_zero_size(self, t: int) -> list:
        msg = self.info(t)
        msg.width = 0
        return self._replace(self.valid(t), 'camera_info', msg)

    def _defect_camera_info_flood(self, t: int) -> list:
        """Many made-up frame_ids: the cache keeps its used frame_ids, the rest evicts itself."""
        parts = [('camera_info', self.info(t, frame_id=self._text(12))) for _ in range(20)]
        return parts + self.valid(t)

    def _defect_older_camera_info_after(self, t: int) -> list:
        """camera_info(t), then camera_info(t - 1 ms) of another size, then the image: exact stamp wins."""
        other = self.info(t - 1_000_000, self.small_camera.scaled(2.0))
        valid = self.valid(t)
        return [valid[0], ('camera_info', other), *valid[1:]]

    def _defect_image_before_camera_info(self, t: int) -> list:
        valid = self.valid(t)
        return [valid[1], valid[2], valid[0]]

    # ---------------------------------------------------------------------------------------------- raw CDR
    def _defect_cdr_mutation(self, t: int) -> list:
        """One part serialized and broken (bytes flipped, cut or appended), published as raw bytes."""
        parts = self.valid(t)
        index = int(self.rng.integers(0, 3))
        key, msg = parts[index]
        raw = bytearray(self._serialize(msg))
        # the header (encapsulation 4 + stamp 8 + frame_id length 4 + 'cam\0' / 'velodyne\0') stays: see module doc
        protect = 4 + 8 + 4 + len(msg.header.frame_id) + 1 if key != 'camera_info' else 0
        how = int(self.rng.integers(0, 3))
        if how == 0:
            for position in self.rng.integers(protect, len(raw), int(self.rng.integers(1, 9))):
                raw[int(position)] = int(self.rng.integers(0, 256))
        elif how == 1:
            raw = raw[:int(self.rng.integers(protect, len(raw)))]
        else:
            raw += self.rng.integers(0, 256, int(self.rng.integers(1, 64))).astype(np.uint8).tobytes()
        parts[index] = (key, bytes(raw))
        return parts


class FuzzDriver:
    """Publishers of the node's inputs and subscribers of its outputs, in one rclpy node of the caller."""

    def __init__(self, node: Any, topics: dict[str, str], output_ns: str = '/depth_completion') -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from std_msgs.msg import Float64

        from depth_completion_ros.ros.qos import make_qos

        self.node = node
        qos = make_qos('reliable', 200)
        self.publishers = {'camera_info': node.create_publisher(CameraInfo, topics['camera_info'], qos),
                           'image': node.create_publisher(Image, topics['image'], qos),
                           'points': node.create_publisher(PointCloud2, topics['points'], qos)}
        self.depth: dict[int, Any] = {}
        self.infos: dict[int, Any] = {}
        self.latencies_ms: list[float] = []
        self.diagnostics: dict[str, str] = {}
        self.published = 0
        self.sent: Counter[str] = Counter()
        out_qos = make_qos('reliable', 50)
        node.create_subscription(Image, f'{output_ns}/depth', self._keep(self.depth), out_qos)
        node.create_subscription(CameraInfo, f'{output_ns}/camera_info', self._keep(self.infos), out_qos)
        node.create_subscription(Float64, f'{output_ns}/latency_ms',
                                 lambda msg: self.latencies_ms.append(float(msg.data)), out_qos)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    @staticmethod
    def _keep(store: dict[int, Any]) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            store[conversions.stamp_to_ns(msg.header.stamp)] = msg
        return callback

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.startswith('depth_completion'):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        import rclpy

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.02)
            if condition():
                return True
        return False

    def wait_for_node(self, timeout_s: float = 30.0) -> bool:
        def matched() -> bool:
            return (all(p.get_subscription_count() > 0 for p in self.publishers.values())
                    and bool(self.diagnostics))
        return self.spin_until(matched, timeout_s)

    def publish(self, parts: list[tuple[str, Any]], pace_s: float = 0.0) -> None:
        """Publish in order; ``pace_s`` between images lets the node's callbacks keep up (its subscriptions keep
        only the last few messages: an unpaced burst would mostly be dropped by the middleware, unseen)."""
        for key, msg in parts:
            self.publishers[key].publish(msg)
            self.published += 1
            self.sent[key] += 1
            if pace_s and key == 'image':
                time.sleep(pace_s)

    def jump_back(self, mix: MalformedMix, stamp_ns: int, timeout_s: float = 20.0) -> bool:
        """Publish a valid frame far in the past (the node's sync resets, then pairs it) and wait for its output:
        every message before it has been digested."""
        self.publish(mix.jump_back(stamp_ns))
        return self.spin_until(lambda: stamp_ns in self.depth, timeout_s)
