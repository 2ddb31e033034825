"""rosbag2 I/O shared by make-bag, play, record, the demo, the benchmark and the tests (rosbags, no ROS CLI).

Bags are written as rosbag2 mcap with the rosbags typestore of ROS 2 Kilted; message bytes are plain CDR,
so the player can hand them to ``Publisher.publish(bytes)`` without deserializing (ENV.md).
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# Topic names of the bags this project writes (the node's inputs are remapped onto them).
IMAGE_TOPIC = '/camera/image_raw'
CAMERA_INFO_TOPIC = '/camera/camera_info'
POINTS_TOPIC = '/lidar/points'
DEPTH_TOPIC = '/camera/depth/image_raw'             # RGB-D bags: registered depth, 16UC1 mm
DEPTH_CAMERA_INFO_TOPIC = '/camera/depth/camera_info'
GT_DEPTH_TOPIC = '/camera/depth_gt'          # synthetic bags: ground-truth depth (32FC1 m, NaN = none)
TF_STATIC_TOPIC = '/tf_static'
PARAMS_FILE_NAME = 'depth_completion_params.yaml'  # written inside the bag folder: extrinsics for the node
EXTRINSICS_METADATA_KEY = 'depth_completion.extrinsics'

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
POINTS_TYPE = 'sensor_msgs/msg/PointCloud2'
TF_TYPE = 'tf2_msgs/msg/TFMessage'


@lru_cache(maxsize=1)
def typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def bag_class(msgtype: str) -> type:
    """rosbags dataclass for 'pkg/msg/Name'."""
    return typestore().types[msgtype]


def rclpy_class(msgtype: str) -> type | None:
    """rclpy message class for 'pkg/msg/Name', or None when that package is not importable here."""
    package, _kind, name = msgtype.split('/')
    try:
        return getattr(importlib.import_module(f'{package}.msg'), name)
    except (ImportError, AttributeError):
        return None


def stamp_of(ns: int) -> dict[str, int]:
    return {'sec': ns // 1_000_000_000, 'nanosec': ns % 1_000_000_000}


class BagWriter:
    """Thin wrapper: one connection per topic, CDR serialization through the typestore."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'{self.path} already exists (rosbag2 writers never overwrite)')
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def connection(self, topic: str, msgtype: str, latched: bool = False) -> Any:
        """The topic's connection, created on first use; ``latched`` records the offered QoS as transient
        local (what ``ros2 bag record`` stores for /tf_static), so players republish it that way."""
        if topic not in self._connections:
            profiles = [latched_bag_qos()] if latched else []
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=typestore(),
                                                                   offered_qos_profiles=profiles)
            self.counts[topic] = 0
        return self._connections[topic]

    def write(self, topic: str, msgtype: str, log_time_ns: int, msg: Any, latched: bool = False) -> None:
        self.connection(topic, msgtype, latched)
        self.write_raw(topic, msgtype, log_time_ns, typestore().serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, log_time_ns: int, data: bytes | memoryview) -> None:
        self._writer.write(self.connection(topic, msgtype), int(log_time_ns), bytes(data))
        self.counts[topic] += 1

    def set_metadata(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_INFINITE = (9223372036, 854775807)  # rosbag2's spelling of "no deadline / lifespan / lease"


def latched_bag_qos() -> Any:
    """Reliable, transient local, keep last 1: the offered QoS of a static-transform publisher."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    infinite = QosTime(*_INFINITE)
    return Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, infinite,
               infinite, QosLiveliness.AUTOMATIC, infinite, False)


def latched_topics(path: str | Path) -> set[str]:
    """Topics whose recorded publishers offered transient-local durability (e.g. /tf_static)."""
    from rosbags.interfaces import QosDurability
    from rosbags.rosbag2 import Reader

    with Reader(Path(path)) as reader:
        return {c.topic for c in reader.connections
                if any(q.durability == QosDurability.TRANSIENT_LOCAL
                       for q in getattr(c.ext, 'offered_qos_profiles', ()) or ())}


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


def read_raw(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Serialized messages in log-time order (optionally only ``topics``)."""
    from rosbags.rosbag2 import Reader

    wanted = set(topics) if topics is not None else None
    with Reader(Path(path)) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for connection, log_time, data in reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, log_time, data)


def read_messages(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[tuple[BagMessage, Any]]:
    """Like :func:`read_raw` plus the deserialized (rosbags) message."""
    store = typestore()
    for raw in read_raw(path, topics):
        yield raw, store.deserialize_cdr(raw.data, raw.msgtype)


def bag_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """{topic: (msgtype, message count)}."""
    from rosbags.rosbag2 import Reader

    with Reader(Path(path)) as reader:
        counts: dict[str, tuple[str, int]] = {}
        for connection in reader.connections:
            _type, count = counts.get(connection.topic, (connection.msgtype, 0))
            counts[connection.topic] = (connection.msgtype, count + connection.msgcount)
        return counts


def write_extrinsics_params(bag_dir: str | Path, matrix_cam_sensor: np.ndarray, extra: dict | None = None) -> Path:
    """The node parameters that carry the bag's static sensor->camera transform (no TF needed)."""
    import yaml

    params: dict[str, Any] = {'extrinsics.source': 'parameters',
                              'extrinsics.matrix': [float(v) for v in np.asarray(matrix_cam_sensor).reshape(-1)]}
    params.update(extra or {})
    path = Path(bag_dir) / PARAMS_FILE_NAME
    path.write_text('# Written by depth-completion make-bag: the static extrinsics of this bag.\n'
                    + yaml.safe_dump({'/**': {'ros__parameters': params}}, sort_keys=False))
    return path


def extrinsics_metadata(matrix_cam_sensor: np.ndarray, camera_frame: str, sensor_frame: str) -> str:
    return json.dumps({'camera_frame': camera_frame, 'sensor_frame': sensor_frame,
                       'T_camera_sensor': np.asarray(matrix_cam_sensor).reshape(4, 4).tolist()})
