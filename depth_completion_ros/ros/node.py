"""``depth_completion_node``: camera(s) + LiDAR/ToF in, dense depth and an organized point cloud out.

The pipeline, per scan:
  1. subscribe: each camera's ``image`` + ``camera_info`` (ros/camera_side.py keeps a camera's state) and one depth
     source, ``points`` (PointCloud2) or ``depth`` (Image, with ``depth/camera_info`` when not registered), on
     best-effort subscriptions;
  2. pair: each camera's approximate-time sync (ros/sync.py) pairs its image with the depth source on the executor
     thread; the newest pair goes to that camera's slot of one (a slower model drops frames, never queues);
  3. complete: one worker thread takes every filled slot, decodes a cloud once for all cameras, projects it into
     each camera (through the lens distortion of a raw image), completes and masks what no measurement supports
     (pipeline.py);
  4. publish: ``~/depth``, ``~/confidence``, ``~/camera_info`` (+ ``~/points``, debug images) with the camera's
     stamp and frame id; with ``cameras`` below ``~/<camera>/``; a timer publishes /diagnostics.

One camera is the simple case (no ``cameras`` parameter): topics ``image``/``camera_info``, outputs ``~/depth``.
``--lifecycle`` runs the managed variant (ros/lifecycle.py): the same stages, entered through transitions.

Run: ``depth_completion_node --ros-args --params-file config/kitti_hdl64.yaml -r image:=/cam/image_raw ...``
"""
from __future__ import annotations

import contextlib
import gc
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from depth_completion_ros.core import conversions
from depth_completion_ros.core.camera import CameraModel, CameraModelError
from depth_completion_ros.core.conversions import stamp_to_ns
from depth_completion_ros.core.units import check_depth_units
from depth_completion_ros.pipeline import (
    DepthCompletionPipeline,
    FrameError,
    FrameOutput,
    PipelineSettings,
    elapsed_ms,
    prefill_mismatch,
)
from depth_completion_ros.ros.camera_info_cache import CameraInfoCache, CameraInfoFields, CameraInfoRejected
from depth_completion_ros.ros.camera_side import (
    DROP_COUNTERS,
    CameraOptions,
    CameraOutputs,
    CameraSide,
    NoCameraInfo,
    PendingFrame,
)
from depth_completion_ros.ros.diagnostics import RateMeter, build_diagnostic_array, status_level
from depth_completion_ros.ros.extrinsics import (
    ExtrinsicsError,
    ExtrinsicsProvider,
    StaticExtrinsics,
    TfExtrinsics,
    make_extrinsics,
    parameters_are_set,
    transform_from_parameters,
)
from depth_completion_ros.ros.node_parameters import NodeParameters, StartupError, validity_settings
from depth_completion_ros.ros.node_process import NODE_NAME
from depth_completion_ros.ros.problem_log import ProblemLog, SilenceWatch, clip
from depth_completion_ros.ros.qos import make_qos
from depth_completion_ros.ros.sync import ApproximateTimeSync, Outcome
from depth_completion_ros.weights_choice import by_input_mode

WARN_PERIOD_S = 2.0
# An input silent this long is logged (then every INPUT_SILENCE_PERIOD_S while it stays silent): long enough for
# a bag or driver to start, short enough that a wrong topic name shows in the log before anyone gives up.
INPUT_SILENCE_S = 10.0
INPUT_SILENCE_PERIOD_S = 30.0
EXTRINSICS_KEYS = ('extrinsics.translation', 'extrinsics.rotation', 'extrinsics.matrix')


@dataclass
class PreparedFrame:
    """A camera's frame decoded and projected, waiting for the network."""
    camera: CameraSide
    frame: PendingFrame
    rgb: Any
    sparse: Any
    model: CameraModel
    sensor_fov: Any
    info_fields: CameraInfoFields
    timings: dict[str, float]
    prepare_ms: float                # decoding and projecting (the frame's processing time excludes the wait
                                     # for the other cameras of its round)


class DepthCompletionCore(NodeParameters):
    """The node's pipeline in stages, shared by the plain node (all stages at start-up) and the lifecycle node
    (one stage per transition): ``_declare`` (parameters), ``_configure`` (model, cameras, publishers, worker),
    ``_activate`` (subscriptions), ``_deactivate`` (stop taking frames), ``_cleanup`` (free the model).
    Mixed into an rclpy ``Node`` or ``LifecycleNode``."""

    # -- provided by rclpy's Node (declared for the type checker; NodeParameters names the parameter ones) ------
    create_subscription: Any
    destroy_subscription: Any
    create_publisher: Any
    destroy_publisher: Any
    create_timer: Any
    destroy_timer: Any
    resolve_topic_name: Any
    get_clock: Any
    get_name: Any
    get_fully_qualified_name: Any
    add_on_set_parameters_callback: Any

    def _declare(self) -> None:
        """Parameters (validated: a bad value is a StartupError) and the state that outlives configure/cleanup."""
        self.values = self._declare_parameters()
        self.problem_log = ProblemLog(self.get_logger().warning, WARN_PERIOD_S)
        # Not counted as problems (the counts would grow every period while nothing arrives): its own throttle.
        self._silence_log = ProblemLog(self.get_logger().warning, INPUT_SILENCE_PERIOD_S)
        self._silence = SilenceWatch(INPUT_SILENCE_S, time.monotonic())
        self.cameras: list[CameraSide] = []
        self.pipeline: DepthCompletionPipeline | None = None
        self.extrinsics: ExtrinsicsProvider | None = None
        self.depth_in = 0
        self.depth_rate = RateMeter()
        self.clouds_decoded = 0
        self._depth_camera_infos = CameraInfoCache()
        self._input_subscriptions: list[Any] = []
        self._output_publishers: list[Any] = []
        self._diagnostics_timer: Any = None
        self._worker: threading.Thread | None = None
        self._slot_ready = threading.Condition()
        self._stopping = False
        self._taking = False            # subscriptions live and frames accepted (active)
        self._abandon_hook: Any = None
        self._last_cloud: tuple[Any, Any] | None = None   # (message, decoded): one decode per scan (worker only)
        self._weights_name = ''
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def multi_camera(self) -> bool:
        return bool(self.values['cameras'])

    # ---------------------------------------------------------------------------------------------------------
    # configure: model, cameras, publishers, worker
    # ---------------------------------------------------------------------------------------------------------
    def _configure(self) -> float:
        """Load and warm up the model, set up the cameras, their publishers and the worker; returns warm-up ms."""
        values = self.values
        self.settings = PipelineSettings(
            min_range=values['min_range'], max_range=values['max_range'],
            prefill_only=values['prefill_only'], cloud_enable=values['cloud.enable'],
            cloud_stride=values['cloud.stride'], cloud_color=values['cloud.color'],
            validity=validity_settings(values))
        if self.settings.min_range >= self.settings.max_range:
            raise StartupError(f'min_range ({self.settings.min_range}) must be below max_range '
                               f'({self.settings.max_range})')
        if len(values['cameras']) > 1 and values['input_mode'] == 'depth' and values['depth_registered']:
            raise StartupError('a registered depth image belongs to one camera: with several cameras set '
                               'depth_registered:=false (the depth image is projected into each camera)')
        self.extrinsics = self._make_extrinsics()
        self.pipeline = self._make_pipeline()
        warm_up_ms = self.pipeline.warm_up()
        self._weights_name = self.pipeline.weights_name   # once: it reads the shipped files' metadata
        self.cameras = [self._make_camera(name) for name in (values['cameras'] or [''])]
        qos = make_qos(values['qos.output.reliability'], values['qos.output.depth'])
        for camera in self.cameras:
            camera.outputs = CameraOutputs(camera.prefix, lambda msg_type, topic: self._publisher(msg_type, topic,
                                                                                                  qos))
            self._output_publishers.extend(camera.outputs.all())
        from diagnostic_msgs.msg import DiagnosticArray
        self.diagnostics_pub = self._publisher(DiagnosticArray, '/diagnostics', 10)
        self._output_publishers.append(self.diagnostics_pub)
        # Inference runs off the executor thread; each camera's slot holds at most one pair (latest wins).
        self._stopping = False
        # Not a daemon: the interpreter must never exit while this thread is inside torch (abort); stop() joins.
        self._worker = threading.Thread(target=self._worker_loop, name='depth_completion_worker')
        self._worker.start()
        self._diagnostics_timer = self.create_timer(values['diagnostics.period'], self._publish_diagnostics)
        mismatch = prefill_mismatch(values['input_mode'], self.pipeline.resolved_prefill_method(),
                                    self._weights_name)
        if mismatch:
            self.get_logger().warning(mismatch)
        return warm_up_ms

    def _ready_line(self, warm_up_ms: float) -> str:
        assert self.pipeline is not None and self.extrinsics is not None
        cameras = f' cameras={",".join(c.name for c in self.cameras)}' if self.multi_camera else ''
        return (f'input_mode={self.values["input_mode"]}{cameras} extrinsics={self.extrinsics.description} '
                f'{"prefill_only" if self.settings.prefill_only else "model=" + self.values["model.variant"]} '
                f'device={self.pipeline.device_name} qos in={self.values["qos.input.reliability"]} '
                f'out={self.values["qos.output.reliability"]} (warm-up {warm_up_ms:.0f} ms)')

    def _publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        """A publisher; the lifecycle node overrides this to make lifecycle publishers."""
        return self.create_publisher(msg_type, topic, qos)

    def _destroy_publisher(self, publisher: Any) -> None:
        self.destroy_publisher(publisher)

    def _make_extrinsics(self) -> ExtrinsicsProvider:
        try:
            return make_extrinsics(self, self.values['extrinsics.source'], self.values['extrinsics.translation'],
                                   self.values['extrinsics.rotation'], self.values['extrinsics.matrix'],
                                   self.values['extrinsics.tf_timeout'])
        except ValueError as exc:
            raise StartupError(f'extrinsics: {exc}') from None

    def _make_camera(self, name: str) -> CameraSide:
        """The single camera (name '') takes the node-wide settings; a named one its ``camera.<name>.*``."""
        assert self.extrinsics is not None
        def key(k: str) -> str:
            # A camera named only after start-up (lifecycle: cameras set while unconfigured) has no
            # camera.<name>.* parameters declared: it takes the node-wide values.
            own_key = f'camera.{name}.{k}'
            return own_key if name and own_key in self.values else k

        extrinsics = self.extrinsics
        own = [self.values[key(k)] for k in EXTRINSICS_KEYS]
        node_wide = [self.values[k] for k in EXTRINSICS_KEYS]
        has_own = name and key('extrinsics.matrix') != 'extrinsics.matrix' and parameters_are_set(*own)
        if has_own and self.values['extrinsics.source'] != 'tf':
            try:
                extrinsics = StaticExtrinsics(transform_from_parameters(*own))
            except ValueError as exc:
                raise StartupError(f'camera {name}: extrinsics: {exc}') from None
        elif name and isinstance(extrinsics, StaticExtrinsics):
            # Cameras of a rig sit in different places: one that shares the node-wide transform (or has none at
            # all) is nearly always a missing setting, so say whose.
            what = 'the node-wide extrinsics.*' if parameters_are_set(*node_wide) else 'identity (none is set)'
            self.get_logger().warning(f'camera {name}: no camera.{name}.extrinsics.* set: it takes {what}')
        options = CameraOptions(image_transport=self.values[key('image_transport')],
                                image_rectified=self.values[key('image_rectified')], extrinsics=extrinsics)
        sync: ApproximateTimeSync[Any] = ApproximateTimeSync(self.values['sync.slop'],
                                                             self.values['sync.queue_size'])
        logger = self.get_logger()
        return CameraSide(name, options, sync, logger.warning, logger.info, WARN_PERIOD_S)

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

    # ---------------------------------------------------------------------------------------------------------
    # activate / deactivate: subscriptions
    # ---------------------------------------------------------------------------------------------------------
    def _activate(self) -> None:
        qos = make_qos(self.values['qos.input.reliability'], self.values['qos.input.depth'])
        subscribe = self._input_subscriptions.append
        for camera in self.cameras:
            subscribe(self.create_subscription(CameraInfo, camera.camera_info_topic,
                                               lambda msg, c=camera: self._cache_camera_info(
                                                   c.camera_infos, msg, c.camera_info_topic, c.warn), qos))
            self._subscribe_image(camera.image_topic, camera.options.image_transport,
                                  lambda msg, c=camera: self._on_image(c, msg), qos)
        if self.values['input_mode'] == 'points':
            subscribe(self.create_subscription(PointCloud2, 'points', self._on_depth_source, qos))
        else:
            self._subscribe_image('depth', self.values['depth_transport'], self._on_depth_source, qos)
            if not self.values['depth_registered']:
                subscribe(self.create_subscription(CameraInfo, 'depth/camera_info', lambda msg: (
                    self._cache_camera_info(self._depth_camera_infos, msg, 'depth/camera_info', self._warn)), qos))
        self._taking = True

    def _subscribe_image(self, base: str, transport: str, callback: Any, qos: Any) -> None:
        """``raw``: sensor_msgs/Image on ``base``; a compressed transport: sensor_msgs/CompressedImage on
        ``<base>/<transport>`` (image_transport's naming: it hangs below the remapped base topic)."""
        if transport == 'raw':
            self._input_subscriptions.append(self.create_subscription(Image, base, callback, qos))
        else:
            self._input_subscriptions.append(self.create_subscription(
                CompressedImage, f'{self.resolve_topic_name(base)}/{transport}', callback, qos))

    def _deactivate(self) -> None:
        """Stop taking frames: no subscription, the waiting frames dropped, the one in the worker not published.
        The model stays loaded."""
        with self._slot_ready:
            self._taking = False
            self._drop_waiting()
            for camera in self.cameras:  # what waits for a partner is stale by the next activate
                camera.sync.reset()
        for subscription in self._input_subscriptions:
            self.destroy_subscription(subscription)
        self._input_subscriptions.clear()

    def _drop_waiting(self) -> None:
        """Under ``_slot_ready``: every frame waiting for the worker is dropped (counted as shutdown drops)."""
        for camera in self.cameras:
            if camera.slot is not None:
                camera.slot = None
                camera.counters.dropped_shutdown += 1

    # ---------------------------------------------------------------------------------------------------------
    # cleanup: free the model
    # ---------------------------------------------------------------------------------------------------------
    def _cleanup(self) -> bool:
        """Join the worker, destroy the publishers and the timer, drop the model; True when the model's memory
        was released (no reference left after a collection)."""
        self.stop()
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        for publisher in self._output_publishers:
            self._destroy_publisher(publisher)
        self._output_publishers.clear()
        self.cameras = []
        self._last_cloud = None
        released = True
        if self.pipeline is not None:
            model_ref = weakref.ref(self.pipeline)
            self.pipeline = None
            gc.collect()
            released = model_ref() is None
            _empty_cuda_cache()
        return released

    def _warn(self, kind: str, message: str) -> None:
        """A problem of the depth source (not of one camera): counted, at most one line per kind and period."""
        self.problem_log.warn(kind, message)


    # ---------------------------------------------------------------------------------------------------------
    # executor thread: caching, pairing, hand-off
    # ---------------------------------------------------------------------------------------------------------
    def _cache_camera_info(self, cache: CameraInfoCache, msg: CameraInfo, topic: str, warn: Any) -> None:
        try:
            cache.add(msg)
        except (CameraInfoRejected, CameraModelError, ValueError, TypeError) as exc:
            cache.note_rejected(msg)
            warn('bad_camera_info', f'{topic} rejected (frame_id {clip(msg.header.frame_id)}): {exc}')

    def _on_image(self, camera: CameraSide, msg: Image) -> None:
        camera.image_arrived(msg)
        self._offer(camera, msg, is_image=True)

    def _on_depth_source(self, msg: Any) -> None:
        """One scan (or depth image) for every camera: each camera's sync pairs it with its own image."""
        self.depth_in += 1
        self.depth_rate.tick()
        if self.values['input_mode'] == 'depth' and not self.values['depth_registered']:
            self._depth_camera_infos.expect(msg.header.frame_id, stamp_to_ns(msg.header.stamp))
        for camera in self.cameras:
            self._offer(camera, msg, is_image=False)

    def _offer(self, camera: CameraSide, msg: Any, is_image: bool) -> None:
        start = time.perf_counter()
        stamp_ns = stamp_to_ns(msg.header.stamp)
        result = camera.sync.add_image(stamp_ns, msg) if is_image else camera.sync.add_depth(stamp_ns, msg)
        sync_ms = elapsed_ms(start)
        if result.outcome is Outcome.ZERO_STAMP:
            camera.warn('zero_stamp', f'{result.detail}: the driver must fill header.stamp; message dropped')
        elif result.outcome is Outcome.RESET:
            camera.warn('time_jump', f'{result.detail} (bag loop or restarted sensor?)')
            if isinstance(self.extrinsics, TfExtrinsics):
                self.extrinsics.clear()
        if result.pair is None:
            return
        with self._slot_ready:
            if self._stopping or not self._taking:
                camera.counters.dropped_shutdown += 1
                return
            if camera.slot is not None:
                camera.counters.dropped_busy += 1  # the worker is still busy: the newer pair wins
            camera.slot = PendingFrame(result.pair, time.monotonic(), sync_ms)
            self._slot_ready.notify()

    # ---------------------------------------------------------------------------------------------------------
    # worker thread: decode -> project -> complete -> encode -> publish
    # ---------------------------------------------------------------------------------------------------------
    def _worker_loop(self) -> None:
        while True:
            with self._slot_ready:
                while not self._stopping and all(camera.slot is None for camera in self.cameras):
                    self._slot_ready.wait(0.5)
                if self._stopping:
                    return
                # Every camera that has a frame now: a round (the frames of one scan, usually).
                frames = [(camera, camera.slot) for camera in self.cameras if camera.slot is not None]
                for camera, _frame in frames:
                    camera.slot = None
            self._process_round([(camera, frame) for camera, frame in frames if frame is not None])

    def _process_round(self, frames: list[tuple[CameraSide, PendingFrame]]) -> None:
        prepared: list[PreparedFrame] = []
        for camera, frame in frames:
            with self._frame_guard(camera):
                prepared.append(self._prepare(camera, frame))
        # On a GPU the frames of one round that share a size go through one batched forward pass; on a CPU a
        # batch gains nothing over running them in turn (pipeline.batches_frames), which is what happens there.
        assert self.pipeline is not None
        if self.pipeline.batches_frames and len(prepared) > 1:
            for group in _same_size_groups(prepared):
                self._complete_and_publish_batch(group)
            return
        self._complete_in_turn(prepared)

    def _complete_in_turn(self, items: list[PreparedFrame]) -> None:
        for item in items:
            with self._frame_guard(item.camera):
                self._complete_and_publish(item)

    def _complete_and_publish_batch(self, items: list[PreparedFrame]) -> None:
        """One batched forward pass for ``items`` (one size), then each published as alone. A batch that fails
        falls back to the frames in turn, so one bad frame costs only itself."""
        assert self.pipeline is not None
        if len(items) == 1:
            self._complete_in_turn(items)
            return
        start = time.perf_counter()
        try:
            outputs = self.pipeline.complete_batch([(i.rgb, i.sparse, i.model, i.sensor_fov) for i in items])
        except Exception:  # each frame then meets its own error, counted for its camera
            self._complete_in_turn(items)
            return
        batch_ms = elapsed_ms(start) / len(items)
        for item, output in zip(items, outputs, strict=True):
            with self._frame_guard(item.camera):
                self._publish_output(item, output, batch_ms)

    @contextlib.contextmanager
    def _frame_guard(self, camera: CameraSide) -> Iterator[None]:
        """Whatever one frame does, the node (and the other cameras) go on: the drop is counted for its camera
        and warned (throttled per kind)."""
        counters = camera.counters
        try:
            yield
        except FrameAbandoned:
            counters.dropped_shutdown += 1
        except FrameError as exc:
            counters.dropped_invalid += 1
            camera.warn(exc.kind, f'frame dropped: {exc}')
        except conversions.UnsupportedEncodingError as exc:
            counters.dropped_invalid += 1
            camera.warn('bad_encoding', f'frame dropped: {exc}')
        except NoCameraInfo as exc:
            counters.dropped_no_camera_info += 1
            camera.warn('no_camera_info', str(exc))
        except ExtrinsicsError as exc:
            counters.dropped_no_extrinsics += 1
            camera.warn('no_extrinsics', f'frame dropped: {exc}')
        except (ValueError, CameraModelError) as exc:  # malformed message layouts from conversions
            counters.dropped_invalid += 1
            camera.warn('bad_layout', f'frame dropped: {exc}')
        except Exception as exc:  # keep the node alive whatever a frame does
            if self._stopping or not self._taking:  # e.g. publishing into a context that is going away
                counters.dropped_shutdown += 1
                return
            counters.dropped_error += 1
            camera.warn('processing_error', f'frame dropped: {type(exc).__name__}: {exc}')

    def _prepare(self, camera: CameraSide, frame: PendingFrame) -> PreparedFrame:
        """Decode the camera's image and the depth source, project the measurements into the camera."""
        assert self.pipeline is not None
        start_total = time.perf_counter()
        image_msg, source_msg = frame.pair.image, frame.pair.depth
        timings: dict[str, float] = {'sync': frame.sync_ms}
        wait_s = self.values['camera_info.wait']

        camera_frame = image_msg.header.frame_id
        model, info_fields = camera.camera_info_for(camera_frame, frame.pair.image_stamp_ns, wait_s)
        model = camera.image_geometry(camera_frame, model)
        sensor_fov = None

        start = time.perf_counter()
        rgb = conversions.image_to_rgb(image_msg)
        if rgb.shape[:2] != (model.height, model.width):
            raise FrameError(f'image is {rgb.shape[1]}x{rgb.shape[0]} but camera_info says '
                             f'{model.width}x{model.height}', 'size_mismatch')
        extrinsics = camera.options.extrinsics
        if self.values['input_mode'] == 'points':
            xyz = self._decoded_cloud(source_msg)
            timings['decode'] = elapsed_ms(start)
            T_cam_sensor = extrinsics.lookup(camera_frame, source_msg.header.frame_id, source_msg.header.stamp)
            sparse, timings['project'] = self.pipeline.sparse_from_points(xyz, model, T_cam_sensor)
            sensor_fov = self.pipeline.sensor_fov_from_points(xyz, T_cam_sensor)
        else:
            depth_m = conversions.depth_image_to_metres(source_msg)
            timings['decode'] = elapsed_ms(start)
            self._check_depth_units(camera, depth_m, source_msg.encoding)
            if self.values['depth_registered']:
                sparse, timings['project'] = self.pipeline.sparse_from_depth(depth_m, None, model, None)
            else:
                depth_frame = source_msg.header.frame_id
                depth_camera, _fields = camera.camera_info_for(depth_frame, frame.pair.depth_stamp_ns, wait_s,
                                                               self._depth_camera_infos, 'depth/camera_info')
                T_cam_depth = extrinsics.lookup(camera_frame, depth_frame, source_msg.header.stamp)
                sparse, timings['project'] = self.pipeline.sparse_from_depth(depth_m, depth_camera, model,
                                                                             T_cam_depth)
                sensor_fov = self.pipeline.sensor_fov_from_depth_camera(depth_camera, T_cam_depth)
        return PreparedFrame(camera, frame, rgb, sparse, model, sensor_fov, info_fields, timings,
                             elapsed_ms(start_total))

    def _decoded_cloud(self, msg: Any) -> Any:
        """The cloud's points, decoded once per scan however many cameras pair with it (worker thread only)."""
        if self._last_cloud is not None and self._last_cloud[0] is msg:
            return self._last_cloud[1]
        cloud = conversions.pointcloud2_to_arrays(msg)
        if cloud.xyz.shape[0] == 0:
            raise FrameError('point cloud is empty (or has no finite points)', 'empty_cloud')
        self.clouds_decoded += 1
        self._last_cloud = (msg, cloud.xyz)
        return cloud.xyz

    def _complete_and_publish(self, item: PreparedFrame) -> None:
        assert self.pipeline is not None
        start = time.perf_counter()
        output = self.pipeline.complete(item.rgb, item.sparse, item.model, item.sensor_fov)
        self._publish_output(item, output, elapsed_ms(start))

    def _publish_output(self, item: PreparedFrame, output: FrameOutput, complete_ms: float) -> None:
        assert item.camera.outputs is not None
        camera, timings = item.camera, item.timings
        timings.update(output.timings_ms)
        if self._stopping or not self._taking:
            raise FrameAbandoned  # told to stop (or deactivated) while computing: publish nothing
        start = time.perf_counter()
        image_msg = item.frame.pair.image
        timings['encode'], timings['publish'] = camera.outputs.publish(
            output, image_msg.header, item.info_fields, self.values['output.encoding'],
            self.values['publish_debug'], self.settings.max_range)
        latency_ms = (time.monotonic() - item.frame.arrival) * 1000.0
        processing_ms = item.prepare_ms + complete_ms + elapsed_ms(start)
        camera.frame_done(latency_ms, processing_ms, timings)
        camera.outputs.publish_timings(image_msg.header.stamp, latency_ms, processing_ms, output, timings)

    def _check_depth_units(self, camera: CameraSide, depth_m: Any, encoding: str) -> None:
        """Most depths outside [min_range, max_range] is a unit mistake, not a scene: without this warning the
        output is silently all unknown (the frame still goes through: the range may be what the user wants)."""
        problem = check_depth_units(depth_m, self.settings.min_range, self.settings.max_range)
        if problem is not None:
            what = problem.describe(self.settings.min_range, self.settings.max_range)
            camera.warn('depth_units', f'depth image ({clip(encoding)}): {what}. The node reads 16UC1 as '
                                       'millimetres and 32FC1 as metres (REP 118): fix the driver\'s units, or '
                                       'min_range/max_range')

    # ---------------------------------------------------------------------------------------------------------
    # diagnostics and shutdown
    # ---------------------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """One camera: its counters flat (as always). Several: the totals, plus ``cameras: {name: {...}}``."""
        node = {'depth_in': self.depth_in, 'depth_rate_hz': self.depth_rate.rate_hz(),
                'mode': 'prefill_only' if self.values['prefill_only'] else self._weights_name,
                'device': self.pipeline.device_name if self.pipeline is not None else ''}
        problems = {f'problem_{kind}': count for kind, count in sorted(self.problem_log.counts.items())}
        if not self.multi_camera:
            if not self.cameras:  # not configured (lifecycle) or cleaned up
                return {'images_in': 0, 'frames_out': 0, 'dropped': 0, **node, **problems}
            camera = self.cameras[0].stats()
            for key, count in problems.items():
                camera[key] = camera.get(key, 0) + count
            return {**camera, **node}
        per_camera = {camera.name: camera.stats() for camera in self.cameras}
        # output_rate_hz too: the node-wide /diagnostics level reads it (without it: always 'no output')
        totals = {key: sum(stats[key] for stats in per_camera.values())
                  for key in ('images_in', 'frames_out', 'dropped', 'output_rate_hz', *DROP_COUNTERS)}
        return {**totals, **node, 'clouds_decoded': self.clouds_decoded, **problems, 'cameras': per_camera}

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        self._log_silent_inputs()
        name = f'{self.get_name()}: depth completion'
        hardware_id = self.get_fully_qualified_name()
        stamp = self.get_clock().now().to_msg()
        if not self.multi_camera:
            self.diagnostics_pub.publish(build_diagnostic_array(stamp, name, hardware_id,
                                                                *_level(stats), stats))
            return
        # One status per camera (its own counters and level), after the node-wide one.
        node_stats = {k: v for k, v in stats.items() if k != 'cameras'}
        array = build_diagnostic_array(stamp, name, hardware_id, *_level(node_stats), node_stats)
        for camera, camera_stats in stats['cameras'].items():
            array.status.extend(build_diagnostic_array(stamp, f'{name} {camera}', hardware_id,
                                                       *_level(camera_stats), camera_stats).status)
        self.diagnostics_pub.publish(array)

    def _log_silent_inputs(self, now: float | None = None) -> None:
        """A throttled warning naming each input topic that has received nothing for INPUT_SILENCE_S."""
        source = 'points' if self.values['input_mode'] == 'points' else 'depth'
        counts = {self.resolve_topic_name(camera.image_topic): camera.counters.images_in for camera in self.cameras}
        counts[self.resolve_topic_name(source)] = self.depth_in
        quiet = self._silence.silent(counts, time.monotonic() if now is None else now)
        if quiet:
            names = ', '.join(f'{topic} ({seconds:.0f} s)' for topic, seconds in quiet.items())
            self._silence_log.warn('no_input', f'no message received on {names}: check the topic names '
                                               f'(remappings), the QoS and that the sensor/bag is publishing')

    def stop(self, join_timeout_s: float = 30.0) -> bool:
        """Stop taking frames, abandon the one in the worker without publishing, join the worker. True when
        the worker has ended (else it is stuck inside one long operation; being non-daemon, the interpreter
        still waits for it at exit instead of aborting under it)."""
        with self._slot_ready:
            self._stopping = True
            self._drop_waiting()
            self._slot_ready.notify_all()
        worker = self._worker
        if worker is None:
            return True
        if worker.is_alive() and self._abandon_hook is None:
            self._abandon_hook = _interrupt_torch_modules(worker)
        worker.join(timeout=join_timeout_s)
        if not worker.is_alive():
            self._worker = None
            if self._abandon_hook is not None:  # a later configure (lifecycle) runs the network again
                self._abandon_hook.remove()
                self._abandon_hook = None
        return worker is not None and not worker.is_alive()


def _level(stats: dict[str, Any]) -> tuple[int, str]:
    inputs = max(stats['images_in'], 1)
    return status_level(stats['dropped'] / inputs, stats.get('output_rate_hz', 0.0), stats['images_in'] > 0)


class DepthCompletionNode(DepthCompletionCore, Node):
    """The plain node: every stage at start-up, ``ready:`` once it subscribes."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._declare()
        warm_up_ms = self._configure()
        self._activate()
        self.get_logger().info('ready: ' + self._ready_line(warm_up_ms))


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


def _empty_cuda_cache() -> None:
    """Hand the freed model's GPU memory back to the driver (only when torch is loaded and a GPU is in use)."""
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``depth_completion_node`` / ``depth-completion node`` (returns the exit status);
    ``--lifecycle`` (before ``--ros-args``) runs the managed node of ros/lifecycle.py instead. The process
    around the node (arguments, CPU settings, signals, spinning, one shutdown path) is ros/node_process.py."""
    from depth_completion_ros.ros.node_process import run

    def make_node(lifecycle: bool) -> DepthCompletionCore:
        if lifecycle:
            from depth_completion_ros.ros.lifecycle import LifecycleDepthCompletionNode

            return LifecycleDepthCompletionNode()
        return DepthCompletionNode()

    return run(sys.argv if argv is None else argv, make_node)


if __name__ == '__main__':
    sys.exit(main())


def _same_size_groups(items: list[PreparedFrame]) -> list[list[PreparedFrame]]:
    """The round's frames grouped by image size (a batch needs one size), in arrival order within a group."""
    groups: dict[tuple[int, ...], list[PreparedFrame]] = {}
    for item in items:
        groups.setdefault(tuple(item.sparse.shape), []).append(item)
    return list(groups.values())
