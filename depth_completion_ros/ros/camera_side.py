"""One camera of the node: its topics, camera_info cache, pairing with the depth source, the frame waiting for the
worker, counters, measurements and output publishers.

The node (ros/node.py) owns the depth source, the model and the worker; it holds one :class:`CameraSide` per
camera. The single-camera node is one unnamed side (topics ``image``, ``camera_info``, outputs ``~/depth``, ...);
with the ``cameras`` parameter each named side reads ``<name>/image`` and publishes ``~/<name>/depth``, ... .
Everything here is touched by the executor thread (arrivals) and the worker thread (processing): the counters
are plain ints (one writer per field), the slot is guarded by the node's condition, the caches lock themselves.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float64, String

from depth_completion_ros.core import conversions
from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.conversions import stamp_to_ns
from depth_completion_ros.pipeline import FrameOutput, elapsed_ms
from depth_completion_ros.ros.camera_info_cache import CameraInfoCache, CameraInfoFields
from depth_completion_ros.ros.diagnostics import LatencyWindow, RateMeter, StageTimings
from depth_completion_ros.ros.extrinsics import ExtrinsicsProvider
from depth_completion_ros.ros.problem_log import ProblemLog, clip
from depth_completion_ros.ros.sync import ApproximateTimeSync, MatchedPair

# Names of the drop counters: the node's accounting (sync_matched == frames_out + these) and the summaries.
DROP_COUNTERS = ('dropped_busy', 'dropped_invalid', 'dropped_no_camera_info', 'dropped_no_extrinsics',
                 'dropped_error', 'dropped_shutdown')


@dataclass
class Counters:
    """Frame accounting of one camera (all since start)."""
    images_in: int = 0
    frames_out: int = 0
    dropped_busy: int = 0          # a newer pair replaced this one before the worker took it
    dropped_invalid: int = 0       # malformed input (encoding, size, empty cloud, bad camera_info, ...)
    dropped_no_camera_info: int = 0
    dropped_no_extrinsics: int = 0
    dropped_error: int = 0         # unexpected processing error (logged with its message)
    dropped_shutdown: int = 0      # waiting or in the worker when the node stopped taking frames (not published)
    camera_info_fallback: int = 0  # processed with an older camera_info: the image's own did not come in time


@dataclass
class PendingFrame:
    pair: MatchedPair[Any]
    arrival: float                   # time.monotonic() when the pair became complete
    sync_ms: float


class NoCameraInfo(RuntimeError):
    """No usable camera_info for the frame's frame_id: the frame is dropped and counted."""


@dataclass
class CameraOptions:
    """What differs between cameras besides their topics."""
    image_transport: str
    image_rectified: bool
    extrinsics: ExtrinsicsProvider


class CameraSide:
    """State and camera-side handling of one camera (see the module docstring)."""

    def __init__(self, name: str, options: CameraOptions, sync: ApproximateTimeSync[Any],
                 warn: Callable[[str], None], info: Callable[[str], None], warn_period_s: float) -> None:
        self.name = name
        self.options = options
        self.sync = sync
        self.counters = Counters()
        # Named cameras say whose problem it is; the single camera keeps the node's plain lines.
        prefix = f'camera {name}: ' if name else ''
        self.problem_log = ProblemLog(lambda message: warn(prefix + message), warn_period_s)
        self._info = lambda message: info(prefix + message)
        # Recent camera_infos per frame_id: the one with the image's stamp wins (sizes/intrinsics may change).
        self.camera_infos = CameraInfoCache()
        self.slot: PendingFrame | None = None   # guarded by the node's condition: the worker takes it
        self.image_rate, self.output_rate = RateMeter(), RateMeter()
        self.latency, self.processing = LatencyWindow(), LatencyWindow()
        self.stage_times = StageTimings()
        self.outputs: CameraOutputs | None = None
        self._geometry_logged: set[tuple[str, str]] = set()

    # -- names ------------------------------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        """Topic prefix below the node's input namespace and ``~``: '' for the single camera."""
        return f'{self.name}/' if self.name else ''

    @property
    def image_topic(self) -> str:
        return self.prefix + 'image'

    @property
    def camera_info_topic(self) -> str:
        return self.prefix + 'camera_info'

    # -- executor thread --------------------------------------------------------------------------------------
    def warn(self, kind: str, message: str) -> None:
        """Count a problem of this camera; at most one line per kind and period (whatever the details)."""
        self.problem_log.warn(kind, message)

    def image_arrived(self, msg: Any) -> None:
        self.counters.images_in += 1
        self.image_rate.tick()
        # Pinned on arrival, not when the worker gets to it: a busy worker must still find the image's own
        # camera_info, however many newer ones came meanwhile.
        self.camera_infos.expect(msg.header.frame_id, stamp_to_ns(msg.header.stamp))

    # -- worker thread ----------------------------------------------------------------------------------------
    def camera_info_for(self, frame_id: str, stamp_ns: int, wait_s: float, cache: CameraInfoCache | None = None,
                        topic: str | None = None) -> tuple[CameraModel, CameraInfoFields]:
        """The camera_info with the image's stamp (waiting up to ``wait_s`` for it), else the newest not after it
        (counted and warned: it may be the previous frame's), else the newest."""
        cache = self.camera_infos if cache is None else cache
        topic = topic or self.camera_info_topic
        found = cache.lookup(frame_id, stamp_ns, wait_s)
        if found is None:
            known = ', '.join(clip(name) for name in cache.known_frame_ids(3)) or 'none'
            more = len(cache) - min(len(cache), 3)
            raise NoCameraInfo(f'no {topic} received yet for frame_id {clip(frame_id)}: frame dropped '
                               f'(known: {known}{f" and {more} more" if more else ""})')
        if not found.exact:
            self.counters.camera_info_fallback += 1
            self.warn('camera_info_fallback',
                      f'no {topic} with the stamp of frame {stamp_ns} for frame_id {clip(frame_id)} within '
                      f'{wait_s} s: using the one of {found.entry.stamp_ns} '
                      f'({(stamp_ns - found.entry.stamp_ns) / 1e9:+.3f} s)')
        return found.entry.camera, found.entry.fields

    def image_geometry(self, frame_id: str, camera: CameraModel) -> CameraModel:
        """Raw (distorted) or rectified image, decided from the camera_info; logged once per frame and choice."""
        projected, reason = camera.for_image(self.options.image_rectified)
        key = (frame_id, reason)
        if key not in self._geometry_logged:
            if len(self._geometry_logged) >= 64:  # bounded whatever frame_ids arrive (made-up ones: a flood)
                self._geometry_logged.clear()
            self._geometry_logged.add(key)
            self._info(f'camera {clip(frame_id)}: {reason}')
        return projected

    def frame_done(self, latency_ms: float, processing_ms: float, timings: dict[str, float]) -> None:
        self.counters.frames_out += 1
        self.output_rate.tick()
        self.latency.add(latency_ms)
        self.processing.add(processing_ms)
        self.stage_times.add(timings)

    # -- accounting -------------------------------------------------------------------------------------------
    def dropped(self) -> int:
        c = self.counters
        return self.sync.stats.dropped + sum(getattr(c, name) for name in DROP_COUNTERS)

    def stats(self) -> dict[str, Any]:
        """This camera's counters, sync counters, rates and latencies (flat, as the single-camera node always
        reported them)."""
        c = self.counters
        return {
            'images_in': c.images_in, 'frames_out': c.frames_out, 'dropped': self.dropped(),
            **{name: getattr(c, name) for name in DROP_COUNTERS},
            'camera_info_fallback': c.camera_info_fallback,
            **{f'sync_{k}': v for k, v in self.sync.stats.as_dict().items()},
            'image_rate_hz': self.image_rate.rate_hz(), 'output_rate_hz': self.output_rate.rate_hz(),
            'latency_ms_p50': self.latency.percentile(50), 'latency_ms_p95': self.latency.percentile(95),
            'processing_ms_p50': self.processing.percentile(50),
            **{f'stage_{k}_ms': v for k, v in self.stage_times.means().items()},
            **{f'problem_{kind}': count for kind, count in sorted(self.problem_log.counts.items())},
        }


class CameraOutputs:
    """The output publishers of one camera (``~/<prefix>depth``, ...), made by the node's publisher factory so
    that a lifecycle node gets lifecycle publishers."""

    def __init__(self, prefix: str, make: Callable[[type, str], Any]) -> None:
        base = f'~/{prefix}'
        self.depth = make(Image, base + 'depth')
        self.confidence = make(Image, base + 'confidence')
        self.confidence_color = make(Image, base + 'debug/confidence_color')
        self.info = make(CameraInfo, base + 'camera_info')
        self.cloud = make(PointCloud2, base + 'points')
        self.sparse = make(Image, base + 'debug/sparse')
        self.prefill = make(Image, base + 'debug/prefill')
        self.color = make(Image, base + 'debug/depth_color')
        self.latency = make(Float64, base + 'latency_ms')
        self.processing = make(Float64, base + 'processing_time_ms')
        self.timings = make(String, base + 'timings')

    def all(self) -> list[Any]:
        return [self.depth, self.confidence, self.confidence_color, self.info, self.cloud, self.sparse,
                self.prefill, self.color, self.latency, self.processing, self.timings]

    def publish(self, output: FrameOutput, header: Any, info_fields: CameraInfoFields, encoding: str,
                debug: bool, max_range: float) -> tuple[float, float]:
        """Encode and publish every image output with the camera's header; returns (encode_ms, publish_ms)."""
        start = time.perf_counter()
        depth_msg = conversions.metres_to_depth_image(output.depth, encoding, header=header)
        confidence_msg = conversions.numpy_to_image(output.confidence, '32FC1', header=header)
        cloud_msg = None
        if output.cloud_xyz is not None:
            cloud_msg = conversions.arrays_to_pointcloud2(output.cloud_xyz, output.cloud_rgb, header=header)
        info_out = info_fields.to_message(header)
        debug_msgs = []
        if debug:
            debug_msgs = [
                (self.sparse, conversions.metres_to_depth_image(output.sparse, '32FC1', header=header)),
                (self.prefill, conversions.metres_to_depth_image(output.prefill, '32FC1', header=header)),
                (self.color, conversions.numpy_to_image(colourise_depth(output.depth, max_range), 'rgb8',
                                                        header=header)),
                (self.confidence_color, conversions.numpy_to_image(
                    colorize_confidence(output.confidence), 'rgb8', header=header)),
            ]
        encode_ms = elapsed_ms(start)

        start = time.perf_counter()
        self.depth.publish(depth_msg)
        self.confidence.publish(confidence_msg)
        self.info.publish(info_out)
        if cloud_msg is not None:
            self.cloud.publish(cloud_msg)
        for publisher, msg in debug_msgs:
            publisher.publish(msg)
        return encode_ms, elapsed_ms(start)

    def publish_timings(self, stamp: Any, latency_ms: float, processing_ms: float, output: FrameOutput,
                        timings: dict[str, float]) -> None:
        self.latency.publish(Float64(data=latency_ms))
        self.processing.publish(Float64(data=processing_ms))
        self.timings.publish(String(data=json.dumps(
            {'stamp_ns': stamp_to_ns(stamp), 'latency_ms': round(latency_ms, 3),
             'processing_ms': round(processing_ms, 3), 'network': output.used_network,
             'prefill_method': output.prefill_method,
             'stages_ms': {k: round(v, 3) for k, v in timings.items()}})))


def colorize_confidence(confidence: Any) -> Any:
    from depth_completion_ros.core.visualize import colorize_depth

    return colorize_depth(confidence, vmin=0.0, vmax=1.0, cmap='viridis')


def colourise_depth(depth: Any, max_range: float) -> Any:
    from depth_completion_ros.core.visualize import colorize_depth

    return colorize_depth(depth, vmin=0.0, vmax=min(max_range, 80.0))
