"""The node's camera_info store: which CameraInfo belongs to an image (pure Python, no rclpy).

Why a store and not "the last one": intrinsics may change per frame (zoom, auto-calibration, a bag of mixed
cameras), camera_infos may arrive out of order, and image_transport's CameraPublisher publishes the image
*before* its camera_info. So an image takes the camera_info with its own stamp; if that one is not there yet
it may wait for it briefly (``wait_s``, bounded), and only then falls back to the newest one not after the
image (counted: a fallback may use the previous frame's K).

Memory is bounded whatever arrives: only the fields the node uses are kept (size, K, R, P, D, distortion
model, binning, ROI: the :class:`CameraModel` plus what ``~/camera_info`` republishes), D is limited to the
longest real distortion model, at most ``history`` entries per frame_id, and frame_ids live in two small
LRUs: those that images actually asked for, and those only seen on camera_info (a flood of made-up frame_ids
evicts only each other, never a camera that is in use).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.conversions import stamp_to_ns

# OpenCV's longest distortion model (k1..k6, p1, p2, s1..s4, tau_x, tau_y); anything longer is not a camera.
MAX_DISTORTION_COEFFICIENTS = 14
MAX_FRAME_ID_LENGTH = 256


class CameraInfoRejected(ValueError):
    """A CameraInfo that cannot describe the camera of an image (message is one short line)."""


@dataclass(frozen=True)
class CameraInfoFields:
    """What ``~/camera_info`` republishes, as plain tuples (a few hundred bytes, not the whole message)."""
    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]
    binning_x: int
    binning_y: int
    roi: tuple[int, int, int, int, bool]  # x_offset, y_offset, height, width, do_rectify

    @classmethod
    def from_message(cls, msg: Any) -> CameraInfoFields:
        roi = msg.roi
        return cls(int(msg.width), int(msg.height), str(msg.distortion_model), tuple(float(v) for v in msg.d),
                   tuple(float(v) for v in msg.k), tuple(float(v) for v in msg.r), tuple(float(v) for v in msg.p),
                   int(msg.binning_x), int(msg.binning_y),
                   (int(roi.x_offset), int(roi.y_offset), int(roi.height), int(roi.width), bool(roi.do_rectify)))

    def to_message(self, header: Any) -> Any:
        """A sensor_msgs/CameraInfo with these fields and ``header``'s stamp and frame id."""
        from sensor_msgs.msg import CameraInfo

        out = CameraInfo()
        out.header.stamp = header.stamp
        out.header.frame_id = header.frame_id
        out.width, out.height = self.width, self.height
        out.distortion_model = self.distortion_model
        out.d, out.k, out.r, out.p = list(self.d), list(self.k), list(self.r), list(self.p)
        out.binning_x, out.binning_y = self.binning_x, self.binning_y
        out.roi.x_offset, out.roi.y_offset, out.roi.height, out.roi.width, out.roi.do_rectify = self.roi
        return out


@dataclass(frozen=True)
class CachedCameraInfo:
    stamp_ns: int
    camera: CameraModel          # K, P, D, distortion model and size as seen by the image (binning/ROI applied)
    fields: CameraInfoFields


@dataclass(frozen=True)
class Lookup:
    """The camera_info chosen for an image."""
    entry: CachedCameraInfo
    exact: bool                  # its stamp is the image's
    waited_s: float              # how long the image waited for it


class _FrameHistory:
    def __init__(self, size: int) -> None:
        self.size = size
        # Arrival order, at most ``size`` entries; eviction spares the pinned ones while it can (see ``add``).
        self.entries: deque[CachedCameraInfo] = deque()
        # Stamps of images that arrived and have not been looked up yet (CameraInfoCache.expect): their
        # camera_infos are kept however many newer ones arrive while the worker is busy with earlier frames.
        self.pinned: deque[int] = deque(maxlen=size)
        # Did the image get the camera_info with its own stamp, for the last few lookups? Waiting is worth it
        # while any did (this camera stamps its camera_infos like its images); a camera that publishes one
        # static camera_info misses every time and stops making its images wait after the first.
        self.recent_exact: deque[bool] = deque(maxlen=size)
        self.recent_images: deque[int] = deque(maxlen=size)  # image stamps that fell back (late exact = evidence)
        self.rejected: deque[int] = deque(maxlen=size)  # stamps whose camera_info came but was unusable

    def add(self, entry: CachedCameraInfo) -> None:
        """Append, then evict the oldest arrivals beyond ``size`` that no waiting image needs. Under load the
        worker looks an image up long after it came; evicting by arrival alone dropped its own camera_info when
        more than ``size`` newer ones came meanwhile, and the image went with a newer (wrong) one."""
        self.entries.append(entry)
        while len(self.entries) > self.size:
            victim = next((e for e in self.entries if e.stamp_ns not in self.pinned), self.entries[0])
            self.entries.remove(victim)

    def unpin(self, stamp_ns: int) -> None:
        if stamp_ns in self.pinned:
            self.pinned.remove(stamp_ns)

    @property
    def stamps_match(self) -> bool:
        return not self.recent_exact or any(self.recent_exact)

    def exact(self, stamp_ns: int) -> CachedCameraInfo | None:
        for entry in reversed(self.entries):
            if entry.stamp_ns == stamp_ns:
                return entry
        return None

    def newest_not_after(self, stamp_ns: int) -> CachedCameraInfo | None:
        best = None
        for entry in self.entries:
            if entry.stamp_ns <= stamp_ns and (best is None or entry.stamp_ns >= best.stamp_ns):
                best = entry
        return best

    def newest(self) -> CachedCameraInfo:
        return max(self.entries, key=lambda entry: entry.stamp_ns)


class CameraInfoCache:
    """Thread-safe: the executor thread adds, the worker thread looks up (and may wait)."""

    def __init__(self, max_frame_ids: int = 8, history: int = 16) -> None:
        self.max_frame_ids = max_frame_ids
        self.history = history
        self._used: OrderedDict[str, _FrameHistory] = OrderedDict()    # frame_ids images asked for (LRU)
        self._unused: OrderedDict[str, _FrameHistory] = OrderedDict()  # seen on camera_info only (FIFO)
        self._changed = threading.Condition()
        self.late_exact = 0   # an exact camera_info arrived after its image had fallen back

    # ---------------------------------------------------------------------------------------- executor side
    def add(self, msg: Any) -> CachedCameraInfo:
        """Validate and store ``msg``; raises :class:`CameraInfoRejected` (or CameraModelError) when unusable."""
        frame_id = str(msg.header.frame_id)
        if len(frame_id) > MAX_FRAME_ID_LENGTH:
            raise CameraInfoRejected(f'frame_id of {len(frame_id)} characters (at most {MAX_FRAME_ID_LENGTH})')
        if len(msg.d) > MAX_DISTORTION_COEFFICIENTS:
            raise CameraInfoRejected(f'{len(msg.d)} distortion coefficients (a camera has at most '
                                     f'{MAX_DISTORTION_COEFFICIENTS})')
        entry = CachedCameraInfo(stamp_to_ns(msg.header.stamp), CameraModel.from_camera_info(msg),
                                 CameraInfoFields.from_message(msg))
        with self._changed:
            frames = self._history(frame_id, create=True)
            frames.add(entry)
            if entry.stamp_ns in frames.recent_images:  # its image already went with an older one
                self.late_exact += 1
                frames.recent_exact.append(True)
            self._changed.notify_all()
        return entry

    def expect(self, frame_id: str, stamp_ns: int) -> None:
        """An image of ``frame_id`` with ``stamp_ns`` arrived (executor thread, before any queueing): keep its
        camera_info, present or still to come, until the worker's :meth:`lookup` of that image, whatever its
        load. Only for frame_ids camera_infos came with (made-up frame_ids on images allocate nothing)."""
        with self._changed:
            frames = self._used.get(frame_id) or self._unused.get(frame_id)
            if frames is not None:
                frames.pinned.append(stamp_ns)

    def note_rejected(self, msg: Any) -> None:
        """A camera_info of a known frame_id was unusable: its images need not wait for it (it came)."""
        with self._changed:
            frames = self._used.get(str(msg.header.frame_id))
            if frames is not None:
                frames.rejected.append(stamp_to_ns(msg.header.stamp))
                self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._used.clear()
            self._unused.clear()

    # ------------------------------------------------------------------------------------------ worker side
    def lookup(self, frame_id: str, stamp_ns: int, wait_s: float = 0.0) -> Lookup | None:
        """The camera_info with ``stamp_ns`` (waiting up to ``wait_s`` for it when this camera's camera_infos
        carry their images' stamps), else the newest not after it, else the newest; None if there is none."""
        start = time.monotonic()
        with self._changed:
            frames = self._history(frame_id, create=False)
            if frames is None:
                return None
            entry = frames.exact(stamp_ns)
            if entry is None and wait_s > 0.0 and frames.stamps_match:
                deadline = start + wait_s
                while (entry is None and stamp_ns not in frames.rejected
                       and (remaining := deadline - time.monotonic()) > 0.0):
                    self._changed.wait(remaining)
                    frames = self._history(frame_id, create=False)
                    if frames is None:  # cleared meanwhile (time jump)
                        return None
                    entry = frames.exact(stamp_ns)
            waited = time.monotonic() - start
            frames.unpin(stamp_ns)
            frames.recent_exact.append(entry is not None)
            if entry is not None:
                return Lookup(entry, True, waited)
            frames.recent_images.append(stamp_ns)
            fallback = frames.newest_not_after(stamp_ns) or frames.newest()
            return Lookup(fallback, False, waited)

    def known_frame_ids(self, limit: int = 3) -> list[str]:
        """A few frame_ids camera_infos came with (most recently used first), for a warning."""
        with self._changed:
            names = list(reversed(self._used)) + list(reversed(self._unused))
        return names[:limit]

    def __len__(self) -> int:
        with self._changed:
            return len(self._used) + len(self._unused)

    def entry_count(self) -> int:
        with self._changed:
            return sum(len(h.entries) for group in (self._used, self._unused) for h in group.values())

    # ------------------------------------------------------------------------------------------- internals
    def _history(self, frame_id: str, create: bool) -> _FrameHistory | None:
        """The frame_id's history (call with the lock held). A lookup (create=False) promotes it to the used
        LRU; an add of an unknown frame_id puts it in the unused FIFO."""
        frames = self._used.get(frame_id)
        if frames is not None:
            if not create:
                self._used.move_to_end(frame_id)
            return frames
        frames = self._unused.get(frame_id)
        if frames is None:
            if not create:
                return None
            frames = self._unused[frame_id] = _FrameHistory(self.history)
            _trim(self._unused, self.max_frame_ids)
            return frames
        if not create:  # an image uses it: promote
            del self._unused[frame_id]
            self._used[frame_id] = frames
            _trim(self._used, self.max_frame_ids)
        return frames


def _trim(group: OrderedDict[str, _FrameHistory], size: int) -> None:
    while len(group) > size:
        group.popitem(last=False)

