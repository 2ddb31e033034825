"""One frame of depth completion, ROS-free: used by the node, the demo and the benchmarks alike.

decoded arrays  ->  sparse depth (LiDAR points projected with a z-buffer, or a depth image registered into
the camera)  ->  completion (prefill, then LRRU unless ``prefill_only``)  ->  validity + confidence
(core/validity.py: unknown wherever no measurement supports the depth)  ->  dense depth + organized cloud.

Depth is in metres, float32, 0 = unknown throughout (the ROS layer turns 0 into NaN, REP 118). Every stage
reports its wall time in milliseconds so the node can publish a per-stage breakdown.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depth_completion_ros.core.band import validity_rows
from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import backproject, project_points, register_depth
from depth_completion_ros.core.transforms import RigidTransform
from depth_completion_ros.core.validity import SensorFov, ValiditySettings, apply_validity


class FrameError(ValueError):
    """This frame cannot be processed (malformed or inconsistent input): drop it, warn, carry on.

    ``kind`` names the problem for counting and log throttling (one line per kind every few seconds)."""

    def __init__(self, message: str, kind: str = 'invalid_input') -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class PipelineSettings:
    """The knobs that may change between frames (the node's run-time parameters)."""
    min_range: float = 0.1
    max_range: float = 100.0
    prefill_only: bool = False
    cloud_enable: bool = True
    cloud_stride: int = 1
    cloud_color: bool = True
    validity: ValiditySettings = field(default_factory=ValiditySettings)


@dataclass
class FrameOutput:
    depth: np.ndarray                 # HxW float32 m, 0 = unknown (no measurement supports it)
    confidence: np.ndarray            # HxW float32 0..1, 0 where depth is unknown (core/validity.py)
    sparse: np.ndarray                # HxW float32 m, the measurements the completion started from
    prefill: np.ndarray               # HxW float32 m, the non-learned fill
    cloud_xyz: np.ndarray | None      # (H/s)x(W/s)x3 float32 in the camera optical frame, NaN = invalid
    cloud_rgb: np.ndarray | None      # (H/s)x(W/s)x3 uint8 or None
    used_network: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    prefill_method: str = ''          # the prefill that ran (previews and logs name it; '' = not reported)


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` value)."""
    return (time.perf_counter() - start) * 1000.0


CompleterFactory = Callable[[bool], Any]  # prefill_only -> object with .complete(rgb, sparse)


class DepthCompletionPipeline:
    """Holds the completer(s) and runs frames. Not thread-safe: one worker thread calls :meth:`process`.

    The network is loaded at construction unless ``settings.prefill_only`` (so a bad weights file fails at
    start-up); switching ``prefill_only`` off later loads it then (:meth:`ensure_network`).
    ``band``: ``auto`` runs the network only on the rows validity can keep (plus a margin; core/band.py), ``off``
    on the whole frame (the node's ``network.band``).
    """

    def __init__(self, settings: PipelineSettings | None = None, variant: str = 'mini', weights: str = '',
                 device: str = 'auto', precision: str = 'fp32',
                 completer_factory: CompleterFactory | None = None, prefill_method: str = 'auto',
                 compile_model: bool = False, band: str = 'off') -> None:
        self.settings = settings or PipelineSettings()
        self.band = band
        self.variant = variant
        self.weights = weights
        self.prefill_method = prefill_method
        self.device = device
        self.precision = precision
        self.compile_model = compile_model
        self._factory = completer_factory or self._default_factory
        self._prefill_completer: Any = None
        self._network_completer: Any = None
        if self.settings.prefill_only:
            self._prefill_completer = self._factory(True)
        else:
            self.ensure_network()

    # -- completers -------------------------------------------------------------------------------------------
    def _default_factory(self, prefill_only: bool) -> Any:
        from depth_completion_ros.model.inference import DepthCompleter  # torch import only when needed

        weights = None if prefill_only else self.resolved_weights()
        method = self.resolved_prefill_method() if prefill_only else self.prefill_method
        return DepthCompleter(variant=self.variant, weights=weights, device=self.device,
                              precision=self.precision, prefill_only=prefill_only, prefill_method=method,
                              compile_model=self.compile_model and not prefill_only,
                              band='off' if prefill_only else self.band)

    def resolved_prefill_method(self) -> str:
        """The prefill this pipeline runs: an explicit ``prefill_method``, else (``auto``) the one stored in the
        configured weights, so prefill-only output is the very map the network would start from."""
        from depth_completion_ros.core.prefill import DEFAULT_PREFILL
        from depth_completion_ros.model.weights import WeightsError, read_metadata, resolve_weights

        if self.prefill_method != 'auto':
            return self.prefill_method
        try:
            return str(read_metadata(resolve_weights(self.resolved_weights()))['prefill'])
        except (WeightsError, ValueError):      # no weights for this variant: prefill only, ip_basic
            return DEFAULT_PREFILL

    def resolved_weights(self) -> str:
        """The weights the network runs (or would run): ``weights`` when set, else the variant's shipped file;
        ValueError when the variant ships none."""
        return self.weights or resolve_shipped_weights(self.variant)

    @property
    def weights_name(self) -> str:
        """:meth:`resolved_weights` by name for logs and stats (``lrru_mini_rgbd`` also for a path to that
        file); '' when the variant ships none (prefill only)."""
        try:
            weights = self.resolved_weights()
        except ValueError:
            return ''
        return Path(weights).stem if weights.endswith('.safetensors') else weights

    def ensure_network(self) -> None:
        """Load the network now (raises the model's error, e.g. WeightsError, when that is impossible)."""
        if self._network_completer is None:
            self._network_completer = self._factory(False)

    @property
    def network_loaded(self) -> bool:
        return self._network_completer is not None

    @property
    def device_name(self) -> str:
        completer = self._network_completer or self._prefill_completer
        return str(getattr(completer, 'device', self.device))

    def warm_up(self, width: int = 64, height: int = 48) -> float:
        """Run one tiny frame so the first real one does not pay for lazy initialisation; returns ms."""
        start = time.perf_counter()
        camera = CameraModel.from_intrinsics(width, width, width / 2, height / 2, width, height)
        sparse = np.zeros((height, width), np.float32)
        sparse[::4, ::4] = 5.0
        self.complete(np.zeros((height, width, 3), np.uint8), sparse, camera)
        return elapsed_ms(start)

    # -- sparse depth ------------------------------------------------------------------------------------------
    def sparse_from_points(self, points_sensor: np.ndarray, camera: CameraModel,
                           T_cam_sensor: RigidTransform) -> tuple[np.ndarray, float]:
        """LiDAR points (Nx3+, sensor frame, finite) -> sparse depth in the camera, nearest return per pixel."""
        start = time.perf_counter()
        points = np.asarray(points_sensor)
        if points.ndim != 2 or points.shape[1] < 3:
            raise FrameError(f'points must be Nx3, got shape {points.shape}')
        if points.shape[0] == 0:
            raise FrameError('empty point cloud', 'empty_cloud')
        # Huge coordinates (or a huge extrinsic) overflow to inf by design: those points fail the projection's
        # range tests; numpy's RuntimeWarnings about it would only be noise on stderr.
        with np.errstate(over='ignore', invalid='ignore'):
            xyz = points[:, :3].astype(np.float32, copy=False)
            finite = np.isfinite(xyz).all(axis=1)
            if not finite.all():
                xyz = xyz[finite]
            if xyz.shape[0] == 0:
                raise FrameError('point cloud has no finite points', 'empty_cloud')
            points_cam = T_cam_sensor.apply(xyz)
        sparse = project_points(points_cam, camera, min_range=self.settings.min_range,
                                max_range=self.settings.max_range)
        return np.asarray(sparse, dtype=np.float32), elapsed_ms(start)

    def sparse_from_depth(self, depth_m: np.ndarray, depth_camera: CameraModel | None, camera: CameraModel,
                          T_cam_depth: RigidTransform | None) -> tuple[np.ndarray, float]:
        """A depth image (metres, 0 invalid) -> sparse depth in the camera.

        Registered depth (``depth_camera is None``) must already have the camera's size; otherwise it is
        back-projected with its own intrinsics, moved by ``T_cam_depth`` and re-projected (z-buffer).
        """
        start = time.perf_counter()
        depth = np.asarray(depth_m, dtype=np.float32)
        if depth_camera is None:
            if depth.shape != (camera.height, camera.width):
                raise FrameError(f'registered depth is {depth.shape[1]}x{depth.shape[0]} but the camera is '
                                 f'{camera.width}x{camera.height}', 'size_mismatch')
            sparse = depth.copy()
        else:
            if depth.shape != (depth_camera.height, depth_camera.width):
                raise FrameError(f'depth image is {depth.shape[1]}x{depth.shape[0]} but its camera_info says '
                                 f'{depth_camera.width}x{depth_camera.height}', 'size_mismatch')
            with np.errstate(over='ignore', invalid='ignore'):  # huge depths/extrinsics: inf, then dropped
                sparse = np.asarray(register_depth(depth, depth_camera, camera,
                                                   T_cam_depth or RigidTransform.identity()), dtype=np.float32)
        sparse[~np.isfinite(sparse)] = 0.0
        out_of_range = (sparse < self.settings.min_range) | (sparse > self.settings.max_range)
        sparse[out_of_range] = 0.0
        return sparse, elapsed_ms(start)

    # -- completion and cloud ----------------------------------------------------------------------------------
    def sensor_fov_from_points(self, points_sensor: np.ndarray, T_cam_sensor: RigidTransform) -> SensorFov | None:
        """The LiDAR's field of view from its scan (None when validity is off)."""
        if not self.settings.validity.enable:
            return None
        points = np.asarray(points_sensor)[:, :3]
        return SensorFov.from_points(points[np.isfinite(points).all(axis=1)], T_cam_sensor,
                                     self.settings.validity.fov_margin_deg)

    def sensor_fov_from_depth_camera(self, depth_camera: CameraModel | None,
                                     T_cam_depth: RigidTransform | None) -> SensorFov | None:
        """A separate depth camera's field of view (None for registered depth or when validity is off)."""
        if depth_camera is None or not self.settings.validity.enable:
            return None
        return SensorFov.from_camera(depth_camera, T_cam_depth or RigidTransform.identity(),
                                     self.settings.validity.fov_margin_deg)

    def complete(self, rgb: np.ndarray, sparse: np.ndarray, camera: CameraModel,
                 sensor_fov: SensorFov | None = None) -> FrameOutput:
        """Dense depth, its confidence (+ organized cloud) from an RGB image and a sparse depth map of the same
        size; pixels no measurement supports (core/validity.py) are unknown, ``sensor_fov`` bounds them too."""
        self._check_frame(rgb, sparse, camera)
        completer = self._completer()
        start = time.perf_counter()
        completion = completer.complete(rgb, sparse, **self._band_arguments(completer))
        return self._finish(rgb, sparse, camera, sensor_fov, completer, completion, elapsed_ms(start))

    def complete_batch(self, frames: list[tuple[np.ndarray, np.ndarray, CameraModel, SensorFov | None]]
                       ) -> list[FrameOutput]:
        """:meth:`complete` for several frames at once (the cameras of one scan): the network runs them as one
        batch where the completer can (``DepthCompleter.complete_batch``: frames of one size), which is what a
        GPU is fast at; everything after the network is per frame, as in :meth:`complete`."""
        for rgb, sparse, camera, _fov in frames:
            self._check_frame(rgb, sparse, camera)
        completer = self._completer()
        batched = getattr(completer, 'complete_batch', None)
        if batched is None or len(frames) < 2:
            return [self.complete(*frame) for frame in frames]
        start = time.perf_counter()
        completions = batched([(rgb, sparse) for rgb, sparse, _c, _f in frames], **self._band_arguments(completer))
        per_frame_ms = elapsed_ms(start) / len(frames)
        return [self._finish(rgb, sparse, camera, fov, completer, completion, per_frame_ms)
                for (rgb, sparse, camera, fov), completion in zip(frames, completions, strict=True)]

    @property
    def batches_frames(self) -> bool:
        """Whether :meth:`complete_batch` is worth it: on a GPU. On a CPU a batch of N costs about N frames (or
        more: measured 3.4-4.6 s for 2 vs 1.5-1.9 s each at 375x1242), so the cameras run in turn there."""
        return not self.settings.prefill_only and self.device_name.startswith('cuda')

    def _check_frame(self, rgb: np.ndarray, sparse: np.ndarray, camera: CameraModel) -> None:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise FrameError(f'rgb must be HxWx3 uint8, got {rgb.shape} {rgb.dtype}')
        if rgb.shape[:2] != sparse.shape or sparse.shape != (camera.height, camera.width):
            raise FrameError(f'size mismatch: image {rgb.shape[1]}x{rgb.shape[0]}, sparse '
                             f'{sparse.shape[1] if sparse.ndim == 2 else "?"}x{sparse.shape[0]}, camera_info '
                             f'{camera.width}x{camera.height}', 'size_mismatch')

    def _completer(self) -> Any:
        if not self.settings.prefill_only:
            self.ensure_network()
            return self._network_completer
        if self._prefill_completer is None:
            self._prefill_completer = self._factory(True)
        return self._prefill_completer

    def _finish(self, rgb: np.ndarray, sparse: np.ndarray, camera: CameraModel, sensor_fov: SensorFov | None,
                completer: Any, completion: Any, total_ms: float) -> FrameOutput:
        """Everything after the completer, per frame: unknown stays unknown, validity, confidence, cloud."""
        settings = self.settings
        use_network = not settings.prefill_only
        timings: dict[str, float] = {}
        reported = {k: float(v) for k, v in dict(getattr(completion, 'timings_ms', {}) or {}).items()}
        timings['prefill'] = reported.get('prefill', total_ms if not use_network else 0.0)
        timings['network'] = max(0.0, total_ms - timings['prefill']) if use_network else 0.0

        depth = np.asarray(completion.depth, dtype=np.float32)
        if use_network:
            depth = depth.copy()  # the completer may hand out a view of its buffers
        prefill = np.asarray(completion.prefill, dtype=np.float32)
        # Unknown stays unknown: non-finite, non-positive or beyond max_range (prefill extrapolates).
        invalid = ~np.isfinite(depth) | (depth <= 0.0) | (depth > settings.max_range)
        if invalid.any():
            depth = np.where(invalid, np.float32(0.0), depth)
        start = time.perf_counter()
        depth, confidence = apply_validity(depth, sparse, camera, settings.validity, sensor_fov)
        timings['validity'] = elapsed_ms(start)

        cloud_xyz = cloud_rgb = None
        if settings.cloud_enable:
            start = time.perf_counter()
            cloud_xyz, cloud_rgb = self.organized_cloud(depth, rgb, camera)
            timings['cloud'] = elapsed_ms(start)
        return FrameOutput(depth=depth, confidence=confidence, sparse=sparse, prefill=prefill, cloud_xyz=cloud_xyz,
                           cloud_rgb=cloud_rgb, used_network=use_network, timings_ms=timings,
                           prefill_method=str(getattr(completer, 'prefill_method', '') or ''))

    def _band_arguments(self, completer: Any) -> dict[str, Any]:
        """What a band-limited completer must know of validity: the rows it keeps above the highest and below
        the lowest measurement. Validity off keeps every row, so the band is off then. Completers without a band
        (prefill only, test doubles) get no arguments."""
        if getattr(completer, 'band', 'off') == 'off':
            return {}
        validity = self.settings.validity
        if not validity.enable:
            return {'band': 'off'}
        return validity_rows(validity)

    def organized_cloud(self, depth: np.ndarray, rgb: np.ndarray | None,
                        camera: CameraModel) -> tuple[np.ndarray, np.ndarray | None]:
        """HxWx3 points in the camera optical frame (NaN where depth is unknown), every ``stride``-th pixel."""
        stride = max(1, int(self.settings.cloud_stride))
        xyz = np.asarray(backproject(depth, camera), dtype=np.float32)
        colours = rgb if (self.settings.cloud_color and rgb is not None) else None
        if stride > 1:
            xyz = np.ascontiguousarray(xyz[::stride, ::stride])
            colours = None if colours is None else np.ascontiguousarray(colours[::stride, ::stride])
        return xyz, colours


def prefill_mismatch(input_mode: str, prefill_method: str, weights: str = '') -> str | None:
    """A start-up warning when the prefill does not fit the sensor, else None. ``linear`` (the RGB-D weights'
    prefill) triangulates every measured pixel in scipy on the CPU: on a ~100k-point LiDAR scan that is 0.6-0.9 s
    per frame (measured in the node), where ip_basic takes ~40 ms and was made for line patterns."""
    if input_mode == 'points' and prefill_method == 'linear':
        source = f'the weights {weights!r} use' if weights else 'prefill.method is'
        return (f'{source} the linear prefill, made for depth cameras and scattered points: on a LiDAR scan it '
                f'costs ~0.6-0.9 s per frame on the CPU. For a LiDAR use the LiDAR weights (model.weights: '
                f'lrru_mini, ip_basic prefill; preset kitti_hdl64.yaml or generic.yaml)')
    return None


def resolve_shipped_weights(variant: str) -> str:
    """Name of the shipped weights for ``variant`` (first match), or a clear error."""
    from depth_completion_ros.model import list_shipped_weights

    shipped = list_shipped_weights()
    for entry in shipped:
        if entry.get('variant') == variant:
            return str(entry['name'])
    names = ', '.join(f"{e['name']} ({e.get('variant')})" for e in shipped) or 'none'
    raise ValueError(f'no shipped weights for LRRU variant {variant!r} (shipped: {names}); '
                     f'set model.weights to a .safetensors file or use prefill_only')


def run_frame(pipeline: DepthCompletionPipeline, rgb: np.ndarray, camera: CameraModel,
              points_sensor: np.ndarray, T_cam_sensor: RigidTransform) -> FrameOutput:
    """Convenience for scripts and tests: points -> sparse -> completion, timings merged."""
    sparse, project_ms = pipeline.sparse_from_points(points_sensor, camera, T_cam_sensor)
    output = pipeline.complete(rgb, sparse, camera, pipeline.sensor_fov_from_points(points_sensor, T_cam_sensor))
    output.timings_ms = {'project': project_ms, **output.timings_ms}
    return output
