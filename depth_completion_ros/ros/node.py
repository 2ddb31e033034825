"""``depth_completion_node``: camera + LiDAR/ToF in, dense depth and an organized point cloud out.

Per frame:
  1. ``image`` and its ``camera_info`` (cached per frame_id, validated) + ``points`` (PointCloud2) or ``depth``
     (Image, with ``depth/camera_info`` when not registered) arrive on best-effort subscriptions;
  2. our own approximate-time sync pairs image and depth source (ros/sync.py) on the executor thread;
  3. the newest pair goes to a worker thread through a slot of one (a slower model drops frames, never queues);
  4. the worker decodes, looks up the extrinsics, projects, completes (pipeline.py), encodes, publishes
     ``~/depth`` + ``~/camera_info`` (+ ``~/points``, debug images) with the camera's stamp and frame id;
  5. a timer publishes /diagnostics (rates, drops, latency, per-stage times).

Run: ``depth_completion_node --ros-args --params-file config/kitti_hdl64.yaml -r image:=/cam/image_raw ...``
"""
from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float64, String

from depth_completion_ros.core import conversions
from depth_completion_ros.core.camera import CameraModel, CameraModelError
from depth_completion_ros.core.conversions import stamp_to_ns
from depth_completion_ros.pipeline import (
    DepthCompletionPipeline,
    FrameError,
    FrameOutput,
    PipelineSettings,
    elapsed_ms,
)
from depth_completion_ros.ros import params as param_table
from depth_completion_ros.ros.diagnostics import (
    LatencyWindow,
    RateMeter,
    StageTimings,
    build_diagnostic_array,
    status_level,
)
from depth_completion_ros.ros.extrinsics import ExtrinsicsError, ExtrinsicsProvider, TfExtrinsics, make_extrinsics
from depth_completion_ros.ros.qos import make_qos
from depth_completion_ros.ros.sync import ApproximateTimeSync, MatchedPair, Outcome

NODE_NAME = 'depth_completion'
WARN_PERIOD_S = 2.0
CAMERA_INFO_HISTORY = 20


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
        self._warned_at: dict[str, float] = {}
        # Recent camera_infos per frame_id: the one with the image's stamp wins (sizes/intrinsics may change).
        self._camera_infos: dict[str, deque[tuple[int, CameraModel, CameraInfo]]] = {}
        self._depth_camera_infos: dict[str, CameraModel] = {}

        self.settings = PipelineSettings(
            min_range=self.values['min_range'], max_range=self.values['max_range'],
            prefill_only=self.values['prefill_only'], cloud_enable=self.values['cloud.enable'],
            cloud_stride=self.values['cloud.stride'], cloud_color=self.values['cloud.color'])
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
        self._worker = threading.Thread(target=self._worker_loop, name='depth_completion_worker', daemon=True)
        self._worker.start()
        self._create_subscriptions()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diagnostics_timer = self.create_timer(self.values['diagnostics.period'], self._publish_diagnostics)
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
            descriptor = param_table.descriptor_for(spec)
            if spec.type_name == 'double[]':
                descriptor.dynamic_typing = True  # YAML [0, 0, 1] is an integer array; accept and convert
            try:
                parameter = self.declare_parameter(spec.name, spec.default, descriptor)
            except Exception as exc:  # rclpy raises several exception types for a bad override
                raise StartupError(f'parameter {spec.name}: {exc}') from None
            value = parameter.value
            if spec.type_name == 'double[]':
                value = [float(v) for v in (value or [])]
            elif spec.type_name == 'double' and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            problem = param_table.check_value(spec, value)
            if problem is not None:
                raise StartupError(problem)
            values[spec.name] = value
        return values

    def _make_extrinsics(self) -> ExtrinsicsProvider:
        try:
            return make_extrinsics(self, self.values['extrinsics.source'], self.values['extrinsics.translation'],
                                   self.values['extrinsics.rotation'], self.values['extrinsics.matrix'],
                                   self.values['extrinsics.tf_timeout'])
        except ValueError as exc:
            raise StartupError(f'extrinsics: {exc}') from None

    def _make_pipeline(self) -> DepthCompletionPipeline:
        try:
            return DepthCompletionPipeline(self.settings, variant=self.values['model.variant'],
                                           weights=self.values['model.weights'], device=self.values['model.device'],
                                           precision=self.values['model.precision'],
                                           prefill_method=self.values['prefill.method'])
        except Exception as exc:  # WeightsError, FileNotFoundError, CUDA unavailable, ...
            raise StartupError(f'model: {exc}') from None

    def _create_publishers(self) -> None:
        qos = make_qos(self.values['qos.output.reliability'], self.values['qos.output.depth'])
        self.depth_pub = self.create_publisher(Image, '~/depth', qos)
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
        self.create_subscription(Image, 'image', self._on_image, qos)
        if self.values['input_mode'] == 'points':
            self.create_subscription(PointCloud2, 'points', self._on_depth_source, qos)
        else:
            self.create_subscription(Image, 'depth', self._on_depth_source, qos)
            if not self.values['depth_registered']:
                self.create_subscription(CameraInfo, 'depth/camera_info', self._on_depth_camera_info, qos)

    # ---------------------------------------------------------------------------------------------------------
    # executor thread: caching, sync, hand-off
    # ---------------------------------------------------------------------------------------------------------
    def _warn(self, kind: str, message: str) -> None:
        """Count a problem and warn at most once per WARN_PERIOD_S for the same problem (same text up to
        numbers), so a stream of bad frames logs one line every few seconds but a new problem shows at once."""
        self.counters.problems[kind] = self.counters.problems.get(kind, 0) + 1
        throttle_key = kind + ':' + re.sub(r'[0-9.]+', '#', message)[:80]
        now = time.monotonic()
        if now - self._warned_at.get(throttle_key, -1e9) >= WARN_PERIOD_S:
            self._warned_at[throttle_key] = now
            self.get_logger().warning(f'{message} [{kind}: {self.counters.problems[kind]} so far]')

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            model = CameraModel.from_camera_info(msg)
        except (CameraModelError, ValueError) as exc:
            self._warn('bad_camera_info', f'camera_info rejected: {exc}')
            return
        history = self._camera_infos.setdefault(msg.header.frame_id, deque(maxlen=CAMERA_INFO_HISTORY))
        history.append((stamp_to_ns(msg.header.stamp), model, msg))

    def _on_depth_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._depth_camera_infos[msg.header.frame_id] = CameraModel.from_camera_info(msg)
        except (CameraModelError, ValueError) as exc:
            self._warn('bad_camera_info', f'depth/camera_info rejected: {exc}')

    def _on_image(self, msg: Image) -> None:
        self.counters.images_in += 1
        self.image_rate.tick()
        self._offer(msg, is_image=True)

    def _on_depth_source(self, msg: Any) -> None:
        self.counters.depth_in += 1
        self.depth_rate.tick()
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
            except FrameError as exc:
                self.counters.dropped_invalid += 1
                self._warn('invalid_input', f'frame dropped: {exc}')
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
                self._warn('invalid_input', f'frame dropped: {exc}')
            except Exception as exc:  # keep the node alive whatever a frame does
                self.counters.dropped_error += 1
                self._warn('processing_error', f'frame dropped: {type(exc).__name__}: {exc}')

    def _process(self, frame: PendingFrame) -> None:
        start_total = time.perf_counter()
        image_msg, source_msg = frame.pair.image, frame.pair.depth
        timings: dict[str, float] = {'sync': frame.sync_ms}

        camera_frame = image_msg.header.frame_id
        camera, info_msg = self._camera_info_for(camera_frame, frame.pair.image_stamp_ns)

        start = time.perf_counter()
        rgb = conversions.image_to_rgb(image_msg)
        if rgb.shape[:2] != (camera.height, camera.width):
            raise FrameError(f'image is {rgb.shape[1]}x{rgb.shape[0]} but camera_info says '
                             f'{camera.width}x{camera.height}')
        if self.values['input_mode'] == 'points':
            cloud = conversions.pointcloud2_to_arrays(source_msg)
            if cloud.xyz.shape[0] == 0:
                raise FrameError('point cloud is empty (or has no finite points)')
            timings['decode'] = elapsed_ms(start)
            T_cam_sensor = self.extrinsics.lookup(camera_frame, source_msg.header.frame_id, source_msg.header.stamp)
            sparse, timings['project'] = self.pipeline.sparse_from_points(cloud.xyz, camera, T_cam_sensor)
        else:
            depth_m = conversions.depth_image_to_metres(source_msg)
            timings['decode'] = elapsed_ms(start)
            if self.values['depth_registered']:
                sparse, timings['project'] = self.pipeline.sparse_from_depth(depth_m, None, camera, None)
            else:
                depth_frame = source_msg.header.frame_id
                depth_camera = self._depth_camera_infos.get(depth_frame)
                if depth_camera is None:
                    raise _NoCameraInfo(f'no depth/camera_info received yet for frame_id {depth_frame!r}: '
                                        f'frame dropped')
                T_cam_depth = self.extrinsics.lookup(camera_frame, depth_frame, source_msg.header.stamp)
                sparse, timings['project'] = self.pipeline.sparse_from_depth(depth_m, depth_camera, camera,
                                                                             T_cam_depth)

        output = self.pipeline.complete(rgb, sparse, camera)
        timings.update(output.timings_ms)
        timings['encode'], timings['publish'] = self._publish(output, image_msg, info_msg)

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
             'stages_ms': {k: round(v, 3) for k, v in timings.items()}})))

    def _camera_info_for(self, frame_id: str, stamp_ns: int) -> tuple[CameraModel, CameraInfo]:
        """The camera_info with the image's stamp, else the newest not after it, else the newest."""
        history = list(self._camera_infos.get(frame_id, ()))  # snapshot: the executor thread appends
        if not history:
            raise _NoCameraInfo(f'no camera_info received yet for frame_id {frame_id!r}: frame dropped '
                                f'(known: {sorted(self._camera_infos) or "none"})')
        not_after = [entry for entry in history if entry[0] <= stamp_ns]
        _stamp, model, msg = (not_after or history)[-1]
        return model, msg

    def _publish(self, output: FrameOutput, image_msg: Image, info_msg: CameraInfo) -> tuple[float, float]:
        """Encode and publish every output; returns (encode_ms, publish_ms)."""
        header = image_msg.header  # outputs carry the camera's stamp and frame id
        start = time.perf_counter()
        depth_msg = conversions.metres_to_depth_image(output.depth, self.values['output.encoding'], header=header)
        cloud_msg = None
        if output.cloud_xyz is not None:
            cloud_msg = conversions.arrays_to_pointcloud2(output.cloud_xyz, output.cloud_rgb, header=header)
        info_out = copy_camera_info(info_msg, header)
        debug_msgs = []
        if self.values['publish_debug']:
            debug_msgs = [
                (self.sparse_pub, conversions.metres_to_depth_image(output.sparse, '32FC1', header=header)),
                (self.prefill_pub, conversions.metres_to_depth_image(output.prefill, '32FC1', header=header)),
                (self.color_pub, conversions.numpy_to_image(_colourise(output.depth, self.settings.max_range),
                                                            'rgb8', header=header)),
            ]
        encode_ms = elapsed_ms(start)

        start = time.perf_counter()
        self.depth_pub.publish(depth_msg)
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
                   + c.dropped_no_extrinsics + c.dropped_error)
        return {
            'images_in': c.images_in, 'depth_in': c.depth_in, 'frames_out': c.frames_out,
            'dropped': dropped, 'dropped_busy': c.dropped_busy, 'dropped_invalid': c.dropped_invalid,
            'dropped_no_camera_info': c.dropped_no_camera_info, 'dropped_no_extrinsics': c.dropped_no_extrinsics,
            'dropped_error': c.dropped_error, **{f'sync_{k}': v for k, v in sync.as_dict().items()},
            'image_rate_hz': self.image_rate.rate_hz(), 'depth_rate_hz': self.depth_rate.rate_hz(),
            'output_rate_hz': self.output_rate.rate_hz(),
            'latency_ms_p50': self.latency.percentile(50), 'latency_ms_p95': self.latency.percentile(95),
            'processing_ms_p50': self.processing.percentile(50),
            **{f'stage_{k}_ms': v for k, v in self.stage_times.means().items()},
            'mode': 'prefill_only' if self.settings.prefill_only else f'lrru_{self.values["model.variant"]}',
            'device': self.pipeline.device_name,
        }

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        inputs = max(stats['images_in'], 1)
        level, message = status_level(stats['dropped'] / inputs, stats['output_rate_hz'],
                                      stats['images_in'] > 0)
        self.diagnostics_pub.publish(build_diagnostic_array(
            self.get_clock().now().to_msg(), f'{self.get_name()}: depth completion', self.get_fully_qualified_name(),
            level, message, stats))

    def stop(self) -> None:
        with self._slot_ready:
            self._stopping = True
            self._slot_ready.notify_all()
        self._worker.join(timeout=5.0)


class _NoCameraInfo(RuntimeError):
    pass




def copy_camera_info(info: CameraInfo, header: Any) -> CameraInfo:
    """The cached CameraInfo with the image's header (stamp and frame id)."""
    out = CameraInfo()
    out.header.stamp = header.stamp
    out.header.frame_id = header.frame_id
    out.height, out.width = info.height, info.width
    out.distortion_model = info.distortion_model
    out.d = info.d
    out.k, out.r, out.p = info.k, info.r, info.p
    out.binning_x, out.binning_y = info.binning_x, info.binning_y
    out.roi = info.roi
    return out


def _colourise(depth: Any, max_range: float) -> Any:
    from depth_completion_ros.core.visualize import colorize_depth

    return colorize_depth(depth, vmin=0.0, vmax=min(max_range, 80.0))


def _params_files(argv: list[str]) -> list[str]:
    files = []
    for i, token in enumerate(argv[:-1]):
        if token == '--params-file':
            files.append(argv[i + 1])
    return files


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``depth_completion_node`` / ``depth-completion node`` (returns the exit status)."""
    argv = list(sys.argv if argv is None else argv)
    prog = 'depth_completion_node'
    # A bad parameter file gets one clear line before rclpy prints its own multi-line errors.
    for path in _params_files(argv):
        try:
            param_table.load_params_file(path)
        except param_table.ConfigError as exc:
            print(f'{prog}: error: {exc}', file=sys.stderr)
            return 2
    try:
        rclpy.init(args=argv)
    except Exception as exc:
        print(f'{prog}: error: cannot initialise ROS: {exc}', file=sys.stderr)
        return 2
    node: DepthCompletionNode | None = None
    status = 0
    try:
        node = DepthCompletionNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except StartupError as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        status = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # SIGINT / SIGTERM: rclpy's handlers shut the context down, we clean up below
    finally:
        if node is not None:
            node.stop()
            print(f'[{NODE_NAME}] final stats ' + json.dumps(node.stats(), default=_json_safe), flush=True)
            node.destroy_node()
        rclpy.try_shutdown()
    return status


def _json_safe(value: Any) -> Any:
    return str(value)


if __name__ == '__main__':
    sys.exit(main())
