"""``depth_completion_node``: camera + LiDAR/ToF in, dense depth and an organized point cloud out.

Per frame:
  1. ``image`` and its ``camera_info`` (cached per frame_id, validated) + ``points`` (PointCloud2) or ``depth``
     (Image, with ``depth/camera_info`` when not registered) arrive on best-effort subscriptions;
  2. our own approximate-time sync pairs image and depth source (ros/sync.py) on the executor thread;
  3. the newest pair goes to a worker thread through a slot of one (a slower model drops frames, never queues);
  4. the worker decodes, looks up the extrinsics, projects (through the lens distortion of a raw image),
     completes and masks what no measurement supports (pipeline.py), encodes, publishes ``~/depth`` +
     ``~/confidence`` + ``~/camera_info`` (+ ``~/points``, debug images) with the camera's stamp and frame id;
  5. a timer publishes /diagnostics (rates, drops, latency, per-stage times).

Run: ``depth_completion_node --ros-args --params-file config/kitti_hdl64.yaml -r image:=/cam/image_raw ...``
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float64, String

from depth_completion_ros.core import conversions
from depth_completion_ros.core.camera import CameraModel, CameraModelError
from depth_completion_ros.core.conversions import stamp_to_ns
from depth_completion_ros.core.cpu_runtime import configure_cpu
from depth_completion_ros.core.units import check_depth_units
from depth_completion_ros.core.validity import ValiditySettings
from depth_completion_ros.pipeline import (
    DepthCompletionPipeline,
    FrameError,
    FrameOutput,
    PipelineSettings,
    elapsed_ms,
    prefill_mismatch,
)
from depth_completion_ros.ros import params as param_table
from depth_completion_ros.ros.camera_info_cache import CameraInfoCache, CameraInfoFields, CameraInfoRejected
from depth_completion_ros.ros.diagnostics import (
    LatencyWindow,
    RateMeter,
    StageTimings,
    build_diagnostic_array,
    status_level,
)
from depth_completion_ros.ros.extrinsics import ExtrinsicsError, ExtrinsicsProvider, TfExtrinsics, make_extrinsics
from depth_completion_ros.ros.problem_log import ProblemLog, SilenceWatch, clip
from depth_completion_ros.ros.qos import make_qos
from depth_completion_ros.ros.sync import ApproximateTimeSync, MatchedPair, Outcome
from depth_completion_ros.weights_choice import by_input_mode

NODE_NAME = 'depth_completion'
# Start-up CPU parameters -> configure_cpu() keywords (applied before torch is imported).
CPU_PARAMETERS = {'cpu.threads': 'threads', 'cpu.wait_policy': 'wait_policy', 'cpu.malloc': 'malloc'}
WARN_PERIOD_S = 2.0
# An input silent this long is logged (then every INPUT_SILENCE_PERIOD_S while it stays silent): long enough for
# a bag or driver to start, short enough that a wrong topic name shows in the log before anyone gives up.
INPUT_SILENCE_S = 10.0
INPUT_SILENCE_PERIOD_S = 30.0


class StartupError(RuntimeError):
    """The node cannot start (bad configuration or weights): one line for the user, non-zero exit."""


@dataclass
class Counters:
    """Frame accounting (all since start)."""
    images_in: int = 0
    depth_in: int = 0
    frames_out: int = 0
    dropped_busy: int = 0          # a newer pair replaced this one before the worker took it
    dropped_invalid: int = 0       # malformed input (encoding, size, empty cloud, bad camera_info, ...)
    dropped_no_camera_info: int = 0
    dropped_no_extrinsics: int = 0
    dropped_error: int = 0         # unexpected processing error (logged with its message)
    dropped_shutdown: int = 0      # waiting or in the worker when the node was told to stop (not published)
    camera_info_fallback: int = 0  # processed with an older camera_info: the image's own did not come in time
    problems: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class PendingFrame:
    pair: MatchedPair[Any]
    arrival: float                   # time.monotonic() when the pair became complete
    sync_ms: float


class DepthCompletionNode(Node):
    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self.values = self._declare_parameters()
        self.counters = Counters()
        self.problem_log = ProblemLog(self.get_logger().warning, WARN_PERIOD_S)
        self.counters.problems = self.problem_log.counts
        # Not counted as problems (the counts would grow every period while nothing arrives): its own throttle.
        self._silence_log = ProblemLog(self.get_logger().warning, INPUT_SILENCE_PERIOD_S)
        self._silence = SilenceWatch(INPUT_SILENCE_S, time.monotonic())
        # Recent camera_infos per frame_id: the one with the image's stamp wins (sizes/intrinsics may change).
        self._camera_infos = CameraInfoCache()
        self._depth_camera_infos = CameraInfoCache()

        self.settings = PipelineSettings(
            min_range=self.values['min_range'], max_range=self.values['max_range'],
            prefill_only=self.values['prefill_only'], cloud_enable=self.values['cloud.enable'],
            cloud_stride=self.values['cloud.stride'], cloud_color=self.values['cloud.color'],
            validity=validity_settings(self.values))
        self._geometry_logged: set[tuple[str, str]] = set()
        if self.settings.min_range >= self.settings.max_range:
            raise StartupError(f'min_range ({self.settings.min_range}) must be below max_range '
                               f'({self.settings.max_range})')
        self.extrinsics = self._make_extrinsics()
        self.pipeline = self._make_pipeline()
        warm_up_ms = self.pipeline.warm_up()
        self.sync: ApproximateTimeSync[Any] = ApproximateTimeSync(self.values['sync.slop'],
                                                                  self.values['sync.queue_size'])

        # measurement
        self.image_rate, self.depth_rate, self.output_rate = RateMeter(), RateMeter(), RateMeter()
        self.latency = LatencyWindow()
        self.processing = LatencyWindow()
        self.stage_times = StageTimings()

        self._create_publishers()
        # Inference runs off the executor thread; the slot holds at most one pair (latest wins).
        self._slot: PendingFrame | None = None
        self._slot_ready = threading.Condition()
        self._stopping = False
        # Not a daemon: the interpreter must never exit while this thread is inside torch (abort); stop() joins.
        self._worker = threading.Thread(target=self._worker_loop, name='depth_completion_worker')
        self._abandon_hook: Any = None
        self._worker.start()
        self._create_subscriptions()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diagnostics_timer = self.create_timer(self.values['diagnostics.period'], self._publish_diagnostics)
        self._weights_name = self.pipeline.weights_name   # once: it reads the shipped files' metadata
        mismatch = prefill_mismatch(self.values['input_mode'], self.pipeline.resolved_prefill_method(),
                                    self._weights_name)
        if mismatch:
            self.get_logger().warning(mismatch)
        self.get_logger().info(
            f'ready: input_mode={self.values["input_mode"]} extrinsics={self.extrinsics.description} '
            f'{"prefill_only" if self.settings.prefill_only else "model=" + self.values["model.variant"]} '
            f'device={self.pipeline.device_name} qos in={self.values["qos.input.reliability"]} '
            f'out={self.values["qos.output.reliability"]} (warm-up {warm_up_ms:.0f} ms)')

    # ---------------------------------------------------------------------------------------------------------
    # set-up
    # ---------------------------------------------------------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in param_table.PARAMETERS:
            try:
                if spec.type_name == 'double[]':
                    value = self._declare_double_array(spec)
                else:
                    value = self.declare_parameter(spec.name, spec.default, param_table.descriptor_for(spec)).value
            except StartupError:
                raise
            except Exception as exc:  # rclpy raises several exception types for a bad override
                raise StartupError(f'parameter {spec.name}: {exc}') from None
            if spec.type_name == 'double' and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            problem = param_table.check_value(spec, value)
            if problem is not None:
                raise StartupError(problem)
            values[spec.name] = value
        return values

    def _declare_double_array(self, spec: param_table.ParamSpec) -> list[float]:
        """A statically typed DOUBLE_ARRAY (a refused set must not change its type) that still takes YAML's
        integer arrays ([0, 0, 1]) from files and -p: declared loosely to read the override, validated, then
        declared again with the static type and the value as floats."""
        loose = param_table.descriptor_for(spec)
        loose.dynamic_typing = True
        value = self.declare_parameter(spec.name, spec.default, loose).value
        self.undeclare_parameter(spec.name)
        value = list(value) if isinstance(value, (list, tuple)) else value
        problem = param_table.check_value(spec, value)
        if problem is not None:
            raise StartupError(problem)
        floats = [float(v) for v in value]
        return list(self.declare_parameter(spec.name, floats, param_table.descriptor_for(spec),
                                           ignore_override=True).value)

    def _make_extrinsics(self) -> ExtrinsicsProvider:
        try:
            return make_extrinsics(self, self.values['extrinsics.source'], self.values['extrinsics.translation'],
                                   self.values['extrinsics.rotation'], self.values['extrinsics.matrix'],
                                   self.values['extrinsics.tf_timeout'])
        except ValueError as exc:
            raise StartupError(f'extrinsics: {exc}') from None

    def _make_pipeline(self) -> DepthCompletionPipeline:
        weights = self.values['model.weights']
        if not weights and self.values['model.variant'] == 'mini':
            # Both shipped networks are LRRU-mini: the one trained on this node's kind of input (weights_choice).
            choice = by_input_mode(None, self.values['input_mode'])
            weights = choice.weights
            self.get_logger().info(f'model.weights not set: {choice.describe("set model.weights")}')
        try:
            return DepthCompletionPipeline(self.settings, variant=self.values['model.variant'],
                                           weights=weights, device=self.values['model.device'],
                                           precision=self.values['model.precision'],
                                           prefill_method=self.values['prefill.method'],
                                           compile_model=self.values['model.compile'],
                                           band=self.values['network.band'])
        except Exception as exc:  # WeightsError, FileNotFoundError, CUDA unavailable, ...
            raise StartupError(f'model: {exc}') from None

    def _create_publishers(self) -> None:
        qos = make_qos(self.values['qos.output.reliability'], self.values['qos.output.depth'])
        self.depth_pub = self.create_publisher(Image, '~/depth', qos)
        self.confidence_pub = self.create_publisher(Image, '~/confidence', qos)
        self.confidence_color_pub = self.create_publisher(Image, '~/debug/confidence_color', qos)
        self.info_pub = self.create_publisher(CameraInfo, '~/camera_info', qos)
        self.cloud_pub = self.create_publisher(PointCloud2, '~/points', qos)
        self.sparse_pub = self.create_publisher(Image, '~/debug/sparse', qos)
        self.prefill_pub = self.create_publisher(Image, '~/debug/prefill', qos)
        self.color_pub = self.create_publisher(Image, '~/debug/depth_color', qos)
        self.latency_pub = self.create_publisher(Float64, '~/latency_ms', qos)
        self.processing_pub = self.create_publisher(Float64, '~/processing_time_ms', qos)
        self.timings_pub = self.create_publisher(String, '~/timings', qos)
        from diagnostic_msgs.msg import DiagnosticArray
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)

    def _create_subscriptions(self) -> None:
        qos = make_qos(self.values['qos.input.reliability'], self.values['qos.input.depth'])
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info, qos)
        self._subscribe_image('image', self.values['image_transport'], self._on_image, qos)
        if self.values['input_mode'] == 'points':
            self.create_subscription(PointCloud2, 'points', self._on_depth_source, qos)
        else:
            self._subscribe_image('depth', self.values['depth_transport'], self._on_depth_source, qos)
            if not self.values['depth_registered']:
                self.create_subscription(CameraInfo, 'depth/camera_info', self._on_depth_camera_info, qos)

    def _subscribe_image(self, base: str, transport: str, callback: Any, qos: Any) -> None:
        """``raw``: sensor_msgs/Image on ``base``; a compressed transport: sensor_msgs/CompressedImage on
        ``<base>/<transport>`` (image_transport's naming: it hangs below the remapped base topic)."""
        if transport == 'raw':
            self.create_subscription(Image, base, callback, qos)
        else:
            self.create_subscription(CompressedImage, f'{self.resolve_topic_name(base)}/{transport}', callback, qos)

    # ---------------------------------------------------------------------------------------------------------
    # executor thread: caching, sync, hand-off
    # ---------------------------------------------------------------------------------------------------------

    def _warn(self, kind: str, message: str) -> None:
        """Count a problem; warn at most once per WARN_PERIOD_S per kind (whatever the details), so a stream of
        bad frames logs one bounded line every few seconds but a new kind of problem shows at once."""
        self.problem_log.warn(kind, message)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._cache_camera_info(self._camera_infos, msg, 'camera_info')

    def _on_depth_camera_info(self, msg: CameraInfo) -> None:
        self._cache_camera_info(self._depth_camera_infos, msg, 'depth/camera_info')

    def _cache_camera_info(self, cache: CameraInfoCache, msg: CameraInfo, topic: str) -> None:
        try:
            cache.add(msg)
        except (CameraInfoRejected, CameraModelError, ValueError, TypeError) as exc:
            cache.note_rejected(msg)
            self._warn('bad_camera_info', f'{topic} rejected (frame_id {clip(msg.header.frame_id)}): {exc}')

    def _on_image(self, msg: Image) -> None:
        self.counters.images_in += 1
        self.image_rate.tick()
        # Pinned on arrival, not when the worker gets to it: a busy worker must still find the image's own
        # camera_info, however many newer ones came meanwhile.
        self._camera_infos.expect(msg.header.frame_id, stamp_to_ns(msg.header.stamp))
        self._offer(msg, is_image=True)

    def _on_depth_source(self, msg: Any) -> None:
        self.counters.depth_in += 1
        self.depth_rate.tick()
        if self.values['input_mode'] == 'depth' and not self.values['depth_registered']:
            self._depth_camera_infos.expect(msg.header.frame_id, stamp_to_ns(msg.header.stamp))
        self._offer(msg, is_image=False)

    def _offer(self, msg: Any, is_image: bool) -> None:
        start = time.perf_counter()
        stamp_ns = stamp_to_ns(msg.header.stamp)
        result = self.sync.add_image(stamp_ns, msg) if is_image else self.sync.add_depth(stamp_ns, msg)
        sync_ms = elapsed_ms(start)
        if result.outcome is Outcome.ZERO_STAMP:
            self._warn('zero_stamp', f'{result.detail}: the driver must fill header.stamp; message dropped')
        elif result.outcome is Outcome.RESET:
            self._warn('time_jump', f'{result.detail} (bag loop or restarted sensor?)')
            if isinstance(self.extrinsics, TfExtrinsics):
                self.extrinsics.clear()
        if result.pair is None:
            return
        with self._slot_ready:
            if self._stopping:
                self.counters.dropped_shutdown += 1
                return
            if self._slot is not None:
                self.counters.dropped_busy += 1  # the worker is still busy: the newer pair wins
            self._slot = PendingFrame(result.pair, time.monotonic(), sync_ms)
            self._slot_ready.notify()

    # ---------------------------------------------------------------------------------------------------------
    # worker thread: decode -> project -> complete -> encode -> publish
    # ---------------------------------------------------------------------------------------------------------
    def _worker_loop(self) -> None:
        while True:
            with self._slot_ready:
                while self._slot is None and not self._stopping:
                    self._slot_ready.wait(0.5)
                if self._stopping:
                    return
                frame, self._slot = self._slot, None
            assert frame is not None
            try:
                self._process(frame)
            except FrameAbandoned:
                self.counters.dropped_shutdown += 1
            except FrameError as exc:
                self.counters.dropped_invalid += 1
                self._warn(exc.kind, f'frame dropped: {exc}')
            except conversions.UnsupportedEncodingError as exc:
                self.counters.dropped_invalid += 1
                self._warn('bad_encoding', f'frame dropped: {exc}')
            except _NoCameraInfo as exc:
                self.counters.dropped_no_camera_info += 1
                self._warn('no_camera_info', str(exc))
            except ExtrinsicsError as exc:
                self.counters.dropped_no_extrinsics += 1
                self._warn('no_extrinsics', f'frame dropped: {exc}')
            except (ValueError, CameraModelError) as exc:  # malformed message layouts from conversions
                self.counters.dropped_invalid += 1
                self._warn('bad_layout', f'frame dropped: {exc}')
            except Exception as exc:  # keep the node alive whatever a frame does
                if self._stopping:  # e.g. publishing into a context that is going away
                    self.counters.dropped_shutdown += 1
                    continue
                self.counters.dropped_error += 1
                self._warn('processing_error', f'frame dropped: {type(exc).__name__}: {exc}')

    def _process(self, frame: PendingFrame) -> None:
        start_total = time.perf_counter()
        image_msg, source_msg = frame.pair.image, frame.pair.depth
        timings: dict[str, float] = {'sync': frame.sync_ms}

        camera_frame = image_msg.header.frame_id
        camera, info_fields = self._camera_info_for(camera_frame, frame.pair.image_stamp_ns)
        camera = self._image_geometry(camera_frame, camera)
        sensor_fov = None

        start = time.perf_counter()
        rgb = conversions.image_to_rgb(image_msg)
        if rgb.shape[:2] != (camera.height, camera.width):
            raise FrameError(f'image is {rgb.shape[1]}x{rgb.shape[0]} but camera_info says '
                             f'{camera.width}x{camera.height}', 'size_mismatch')
        if self.values['input_mode'] == 'points':
            cloud = conversions.pointcloud2_to_arrays(source_msg)
            if cloud.xyz.shape[0] == 0:
                raise FrameError('point cloud is empty (or has no finite points)', 'empty_cloud')
            timings['decode'] = elapsed_ms(start)
            T_cam_sensor = self.extrinsics.lookup(camera_frame, source_msg.header.frame_id, source_msg.header.stamp)
            sparse, timings['project'] = self.pipeline.sparse_from_points(cloud.xyz, camera, T_cam_sensor)
            sensor_fov = self.pipeline.sensor_fov_from_points(cloud.xyz, T_cam_sensor)
        else:
            depth_m = conversions.depth_image_to_metres(source_msg)
            timings['decode'] = elapsed_ms(start)
            self._check_depth_units(depth_m, source_msg.encoding)
            if self.values['depth_registered']:
                sparse, timings['project'] = self.pipeline.sparse_from_depth(depth_m, None, camera, None)
            else:
                depth_frame = source_msg.header.frame_id
                depth_camera, _fields = self._camera_info_for(depth_frame, frame.pair.depth_stamp_ns,
                                                              self._depth_camera_infos, 'depth/camera_info')
                T_cam_depth = self.extrinsics.lookup(camera_frame, depth_frame, source_msg.header.stamp)
                sparse, timings['project'] = self.pipeline.sparse_from_depth(depth_m, depth_camera, camera,
                                                                             T_cam_depth)
                sensor_fov = self.pipeline.sensor_fov_from_depth_camera(depth_camera, T_cam_depth)

        output = self.pipeline.complete(rgb, sparse, camera, sensor_fov)
        timings.update(output.timings_ms)
        if self._stopping:
            raise FrameAbandoned  # told to stop while computing: publish nothing
        timings['encode'], timings['publish'] = self._publish(output, image_msg, info_fields)

        latency_ms = (time.monotonic() - frame.arrival) * 1000.0
        processing_ms = elapsed_ms(start_total)
        self.counters.frames_out += 1
        self.output_rate.tick()
        self.latency.add(latency_ms)
        self.processing.add(processing_ms)
        self.stage_times.add(timings)
        self.latency_pub.publish(Float64(data=latency_ms))
        self.processing_pub.publish(Float64(data=processing_ms))
        stamp = image_msg.header.stamp
        self.timings_pub.publish(String(data=json.dumps(
            {'stamp_ns': stamp_to_ns(stamp), 'latency_ms': round(latency_ms, 3),
             'processing_ms': round(processing_ms, 3), 'network': output.used_network,
             'prefill_method': output.prefill_method,
             'stages_ms': {k: round(v, 3) for k, v in timings.items()}})))

    def _check_depth_units(self, depth_m: Any, encoding: str) -> None:
        """Most depths outside [min_range, max_range] is a unit mistake, not a scene: without this warning the
        output is silently all unknown (the frame still goes through: the range may be what the user wants)."""
        problem = check_depth_units(depth_m, self.settings.min_range, self.settings.max_range)
        if problem is not None:
            what = problem.describe(self.settings.min_range, self.settings.max_range)
            self._warn('depth_units', f'depth image ({clip(encoding)}): {what}. The node reads 16UC1 as '
                                      'millimetres and 32FC1 as metres (REP 118): fix the driver\'s units, or '
                                      'min_range/max_range')

    def _camera_info_for(self, frame_id: str, stamp_ns: int, cache: CameraInfoCache | None = None,
                         topic: str = 'camera_info') -> tuple[CameraModel, CameraInfoFields]:
        """The camera_info with the image's stamp (waiting up to camera_info.wait for it), else the newest not
        after it (counted and warned: it may be the previous frame's), else the newest."""
        cache = self._camera_infos if cache is None else cache
        found = cache.lookup(frame_id, stamp_ns, self.values['camera_info.wait'])
        if found is None:
            known = ', '.join(clip(name) for name in cache.known_frame_ids(3)) or 'none'
            more = len(cache) - min(len(cache), 3)
            raise _NoCameraInfo(f'no {topic} received yet for frame_id {clip(frame_id)}: frame dropped '
                                f'(known: {known}{f" and {more} more" if more else ""})')
        if not found.exact:
            self.counters.camera_info_fallback += 1
            self._warn('camera_info_fallback',
                       f'no {topic} with the stamp of frame {stamp_ns} for frame_id {clip(frame_id)} within '
                       f'{self.values["camera_info.wait"]} s: using the one of {found.entry.stamp_ns} '
                       f'({(stamp_ns - found.entry.stamp_ns) / 1e9:+.3f} s)')
        return found.entry.camera, found.entry.fields

    def _image_geometry(self, frame_id: str, camera: CameraModel) -> CameraModel:
        """Raw (distorted) or rectified image, decided from the camera_info; logged once per frame and choice."""
        projected, reason = camera.for_image(self.values['image_rectified'])
        key = (frame_id, reason)
        if key not in self._geometry_logged:
            if len(self._geometry_logged) >= 64:  # bounded whatever frame_ids arrive (made-up ones: a flood)
                self._geometry_logged.clear()
            self._geometry_logged.add(key)
            self.get_logger().info(f'camera {clip(frame_id)}: {reason}')
        return projected

    def _publish(self, output: FrameOutput, image_msg: Image, info_fields: CameraInfoFields) -> tuple[float, float]:
        """Encode and publish every output; returns (encode_ms, publish_ms)."""
        header = image_msg.header  # outputs carry the camera's stamp and frame id
        start = time.perf_counter()
        depth_msg = conversions.metres_to_depth_image(output.depth, self.values['output.encoding'], header=header)
        confidence_msg = conversions.numpy_to_image(output.confidence, '32FC1', header=header)
        cloud_msg = None
        if output.cloud_xyz is not None:
            cloud_msg = conversions.arrays_to_pointcloud2(output.cloud_xyz, output.cloud_rgb, header=header)
        info_out = info_fields.to_message(header)
        debug_msgs = []
        if self.values['publish_debug']:
            debug_msgs = [
                (self.sparse_pub, conversions.metres_to_depth_image(output.sparse, '32FC1', header=header)),
                (self.prefill_pub, conversions.metres_to_depth_image(output.prefill, '32FC1', header=header)),
                (self.color_pub, conversions.numpy_to_image(_colourise(output.depth, self.settings.max_range),
                                                            'rgb8', header=header)),
                (self.confidence_color_pub, conversions.numpy_to_image(
                    colorize_confidence(output.confidence), 'rgb8', header=header)),
            ]
        encode_ms = elapsed_ms(start)

        start = time.perf_counter()
        self.depth_pub.publish(depth_msg)
        self.confidence_pub.publish(confidence_msg)
        self.info_pub.publish(info_out)
        if cloud_msg is not None:
            self.cloud_pub.publish(cloud_msg)
        for publisher, msg in debug_msgs:
            publisher.publish(msg)
        return encode_ms, elapsed_ms(start)

    # ---------------------------------------------------------------------------------------------------------
    # parameters changed at run time
    # ---------------------------------------------------------------------------------------------------------
    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        updates: dict[str, Any] = {}
        for parameter in parameters:
            value = parameter.value
            if parameter.type_ == Parameter.Type.DOUBLE_ARRAY or parameter.type_ == Parameter.Type.INTEGER_ARRAY:
                value = [float(v) for v in value]
            elif parameter.type_ == Parameter.Type.INTEGER and isinstance(
                    self.values.get(parameter.name), float):
                value = float(value)
            reason = param_table.check_runtime_change(parameter.name, value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
            if parameter.name in self.values:
                updates[parameter.name] = value
        merged = {**self.values, **updates}
        if merged['min_range'] >= merged['max_range']:
            return SetParametersResult(successful=False, reason='min_range must stay below max_range')
        if 'prefill_only' in updates and not updates['prefill_only'] and not self.pipeline.network_loaded:
            try:
                self.pipeline.ensure_network()
            except Exception as exc:
                return SetParametersResult(successful=False, reason=f'cannot load the network: {exc}')
        self.values = merged
        self.settings.min_range = merged['min_range']
        self.settings.max_range = merged['max_range']
        self.settings.prefill_only = merged['prefill_only']
        self.settings.cloud_enable = merged['cloud.enable']
        self.settings.cloud_stride = merged['cloud.stride']
        self.settings.cloud_color = merged['cloud.color']
        self.settings.validity = validity_settings(merged)
        self.sync.slop_s = merged['sync.slop']
        if updates:
            self.get_logger().info('parameters changed: ' + ', '.join(f'{k}={v}' for k, v in updates.items()))
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------------------------------------------------
    # diagnostics and shutdown
    # ---------------------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        c = self.counters
        sync = self.sync.stats
        dropped = (sync.dropped + c.dropped_busy + c.dropped_invalid + c.dropped_no_camera_info
                   + c.dropped_no_extrinsics + c.dropped_error + c.dropped_shutdown)
        return {
            'images_in': c.images_in, 'depth_in': c.depth_in, 'frames_out': c.frames_out,
            'dropped': dropped, 'dropped_busy': c.dropped_busy, 'dropped_invalid': c.dropped_invalid,
            'dropped_no_camera_info': c.dropped_no_camera_info, 'dropped_no_extrinsics': c.dropped_no_extrinsics,
            'dropped_error': c.dropped_error, 'dropped_shutdown': c.dropped_shutdown,
            'camera_info_fallback': c.camera_info_fallback,
            **{f'sync_{k}': v for k, v in sync.as_dict().items()},
            'image_rate_hz': self.image_rate.rate_hz(), 'depth_rate_hz': self.depth_rate.rate_hz(),
            'output_rate_hz': self.output_rate.rate_hz(),
            'latency_ms_p50': self.latency.percentile(50), 'latency_ms_p95': self.latency.percentile(95),
            'processing_ms_p50': self.processing.percentile(50),
            **{f'stage_{k}_ms': v for k, v in self.stage_times.means().items()},
            'mode': 'prefill_only' if self.settings.prefill_only else self._weights_name,
            'device': self.pipeline.device_name,
            **{f'problem_{kind}': count for kind, count in sorted(c.problems.items())},
        }

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        self._log_silent_inputs(stats)
        inputs = max(stats['images_in'], 1)
        level, message = status_level(stats['dropped'] / inputs, stats['output_rate_hz'],
                                      stats['images_in'] > 0)
        self.diagnostics_pub.publish(build_diagnostic_array(
            self.get_clock().now().to_msg(), f'{self.get_name()}: depth completion', self.get_fully_qualified_name(),
            level, message, stats))

    def _log_silent_inputs(self, stats: dict[str, Any], now: float | None = None) -> None:
        """A throttled warning naming each input topic that has received nothing for INPUT_SILENCE_S."""
        source = 'points' if self.values['input_mode'] == 'points' else 'depth'
        topics = {'image': self.resolve_topic_name('image'), source: self.resolve_topic_name(source)}
        quiet = self._silence.silent({'image': stats['images_in'], source: stats['depth_in']},
                                     time.monotonic() if now is None else now)
        if quiet:
            names = ', '.join(f'{topics[name]} ({seconds:.0f} s)' for name, seconds in quiet.items())
            self._silence_log.warn('no_input', f'no message received on {names}: check the topic names '
                                               f'(remappings), the QoS and that the sensor/bag is publishing')

    def stop(self, join_timeout_s: float = 30.0) -> bool:
        """Stop taking frames, abandon the one in the worker without publishing, join the worker. True when
        the worker has ended (else it is stuck inside one long operation; being non-daemon, the interpreter
        still waits for it at exit instead of aborting under it)."""
        with self._slot_ready:
            self._stopping = True
            if self._slot is not None:
                self._slot = None
                self.counters.dropped_shutdown += 1
            self._slot_ready.notify_all()
        if self._worker.is_alive() and self._abandon_hook is None:
            self._abandon_hook = _interrupt_torch_modules(self._worker)
        self._worker.join(timeout=join_timeout_s)
        return not self._worker.is_alive()


class _NoCameraInfo(RuntimeError):
    pass


class FrameAbandoned(Exception):
    """The node is stopping: the frame in the worker is dropped without publishing."""


def _interrupt_torch_modules(thread: threading.Thread) -> Any:
    """From now on every torch module call in ``thread`` raises FrameAbandoned: the network on a large image
    runs for seconds on a CPU, and shutdown should not wait for it. Global hook, installed only at shutdown."""
    import torch

    def abandon(_module: Any, _inputs: Any) -> None:
        if threading.current_thread() is thread:
            raise FrameAbandoned

    return torch.nn.modules.module.register_module_forward_pre_hook(abandon)


class ShutdownRequest:
    """SIGINT and SIGTERM only set a flag (rclpy's own handlers would invalidate the context under a running
    executor and the worker's publishers: tracebacks and errors); the spin loop checks it and shuts down."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ''
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if not self.event.is_set():
            self.signal_name = signal.Signals(signum).name
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()


def validity_settings(values: dict[str, Any]) -> ValiditySettings:
    """The ``validity.*`` / ``confidence.*`` parameters as core settings."""
    return ValiditySettings(enable=values['validity.enable'], top_margin_px=values['validity.top_margin_px'],
                            column_window_px=values['validity.column_window_px'],
                            max_distance_px=values['validity.max_distance_px'],
                            fov_margin_deg=values['validity.fov_margin_deg'],
                            confidence_distance_px=values['confidence.distance_px'],
                            confidence_relative_tolerance=values['confidence.relative_tolerance'])


def colorize_confidence(confidence: Any) -> Any:
    from depth_completion_ros.core.visualize import colorize_depth

    return colorize_depth(confidence, vmin=0.0, vmax=1.0, cmap='viridis')


def _colourise(depth: Any, max_range: float) -> Any:
    from depth_completion_ros.core.visualize import colorize_depth

    return colorize_depth(depth, vmin=0.0, vmax=min(max_range, 80.0))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``depth_completion_node`` / ``depth-completion node`` (returns the exit status)."""
    argv = list(sys.argv if argv is None else argv)
    prog = 'depth_completion_node'
    shutdown = ShutdownRequest()  # before anything slow: a signal during start-up is a clean stop too
    # A bad parameter file or -p value gets one clear line (rclpy would print several, or ignore a wrong type).
    try:
        param_table.check_command_line(argv)
    except param_table.ConfigError as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return 2
    # Before anything imports torch: libgomp reads the wait policy once, when it loads.
    cpu = param_table.command_line_values(argv, list(CPU_PARAMETERS))
    settings = configure_cpu(**{CPU_PARAMETERS[name]: value for name, value in cpu.items()})
    print(f'[{NODE_NAME}] cpu: ' + ', '.join(f'{k}={v}' for k, v in settings.items()), flush=True)
    try:
        rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:
        print(f'{prog}: error: cannot initialise ROS: {exc}', file=sys.stderr)
        return 2
    node: DepthCompletionNode | None = None
    executor: SingleThreadedExecutor | None = None
    status = 0
    try:
        node = DepthCompletionNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not shutdown.requested:
            executor.spin_once(timeout_sec=0.1)  # wakes up for the shutdown flag at least every 0.1 s
    except StartupError as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        status = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # the context was shut down from elsewhere: the same clean stop below
    except Exception:
        if rclpy.ok() and not shutdown.requested:
            raise
        # the context became invalid under the executor (shut down from elsewhere): the same clean stop
    finally:
        _shut_down(node, executor, shutdown)
    return status


def _shut_down(node: DepthCompletionNode | None, executor: SingleThreadedExecutor | None,
               shutdown: ShutdownRequest) -> None:
    """The one shutdown path: stop taking frames, abandon/join the worker, final counters, destroy, shut down."""
    if node is not None:
        finished = node.stop()
        stats = {**node.stats(), 'stopped_by': shutdown.signal_name or 'shutdown'}
        print(f'[{NODE_NAME}] final stats ' + json.dumps(stats, default=_json_safe), flush=True)
        if not finished:
            print(f'[{NODE_NAME}] the worker is still inside one operation; exiting when it returns', flush=True)
        if executor is not None:
            executor.remove_node(node)
            executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
    rclpy.try_shutdown()


def _json_safe(value: Any) -> Any:
    return str(value)


if __name__ == '__main__':
    sys.exit(main())
