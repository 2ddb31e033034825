"""The node's camera_info store (ros/camera_info_cache.py): which camera_info an image gets, and bounded memory
whatever arrives. Pure Python with real sensor_msgs/CameraInfo messages."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.ros.camera_info_cache import (
    MAX_DISTORTION_COEFFICIENTS,
    CameraInfoCache,
    CameraInfoRejected,
)

S = 10**9


def _info(stamp_s: float, width: int = 64, height: int = 48, fx: float = 60.0, frame_id: str = 'cam'):
    camera = CameraModel.from_intrinsics(fx, fx, width / 2, height / 2, width, height, frame_id=frame_id)
    stamp_ns = int(stamp_s * S)
    return camera.to_camera_info(stamp=(stamp_ns // S, stamp_ns % S))


def test_exact_stamp_wins_over_a_later_arriving_older_camera_info() -> None:
    # issue 12 (3): camera_info(t, 64x48), then camera_info(t-1, 80x60), then image(t)
    cache = CameraInfoCache()
    cache.add(_info(10.0, 64, 48))
    cache.add(_info(9.0, 80, 60))
    found = cache.lookup('cam', 10 * S)
    assert found.exact and (found.entry.camera.width, found.entry.camera.height) == (64, 48)
    # an image between the two goes with the newest one not after it
    between = cache.lookup('cam', int(9.5 * S))
    assert not between.exact and between.entry.stamp_ns == 9 * S
    # an image older than every camera_info still gets one (the newest), flagged as not exact
    assert cache.lookup('cam', 5 * S).entry.stamp_ns == 10 * S


def test_image_before_its_camera_info_waits_for_the_exact_one() -> None:
    # issue 12 (4): image_transport's CameraPublisher publishes the image first; K changes every frame
    cache = CameraInfoCache()
    cache.add(_info(1.0, fx=50.0))
    late = threading.Timer(0.05, lambda: cache.add(_info(2.0, fx=70.0)))
    late.start()
    found = cache.lookup('cam', 2 * S, wait_s=2.0)
    late.join()
    assert found.exact and found.entry.camera.fx == 70.0
    assert 0.03 < found.waited_s < 1.0


def test_fallback_after_the_bounded_wait_then_no_more_waiting_for_a_static_camera_info() -> None:
    cache = CameraInfoCache()
    cache.add(_info(1.0, fx=50.0))  # a driver that publishes one camera_info (or with its own stamps)
    start = time.monotonic()
    first = cache.lookup('cam', 2 * S, wait_s=0.2)
    assert not first.exact and first.entry.camera.fx == 50.0
    assert 0.15 < time.monotonic() - start < 1.0  # waited, bounded
    start = time.monotonic()
    second = cache.lookup('cam', 3 * S, wait_s=0.2)
    assert not second.exact and time.monotonic() - start < 0.05  # learnt: this camera does not match stamps
    # the exact one turns up late after all: evidence that waiting pays, the next image waits again
    cache.add(_info(3.0, fx=55.0))
    assert cache.late_exact == 1
    late = threading.Timer(0.05, lambda: cache.add(_info(4.0, fx=56.0)))
    late.start()
    third = cache.lookup('cam', 4 * S, wait_s=2.0)
    late.join()
    assert third.exact and third.entry.camera.fx == 56.0


def test_unknown_frame_id_is_none_without_waiting() -> None:
    cache = CameraInfoCache()
    cache.add(_info(1.0, frame_id='cam'))
    start = time.monotonic()
    assert cache.lookup('other', 1 * S, wait_s=1.0) is None
    assert time.monotonic() - start < 0.05
    assert cache.known_frame_ids() == ['cam']


def test_bounded_whatever_arrives() -> None:
    # issue 12 (5): 20,000 distinct frame_ids, long histories, huge D, huge frame_id
    cache = CameraInfoCache(max_frame_ids=8, history=16)
    for stamp in range(40):
        cache.add(_info(1.0 + stamp, frame_id='cam'))
    assert cache.lookup('cam', 40 * S).exact  # an image used 'cam': it is in the used LRU now
    for i in range(20_000):
        cache.add(_info(1.0, frame_id=f'flood_{i}'))
    assert len(cache) <= 16 and cache.entry_count() <= 16 * 16
    assert cache.lookup('cam', 40 * S).exact  # the flood evicted only other unused frame_ids
    assert len(cache.known_frame_ids()) == 3
    huge_d = _info(50.0)
    huge_d.d = np.zeros(400_000).tolist()
    with pytest.raises(CameraInfoRejected, match='distortion coefficients'):
        cache.add(huge_d)
    huge_d.d = np.zeros(MAX_DISTORTION_COEFFICIENTS).tolist()
    cache.add(huge_d)  # the longest real model is fine
    with pytest.raises(CameraInfoRejected, match='frame_id of 1000000 characters'):
        cache.add(_info(1.0, frame_id='x' * 1_000_000))


def test_republished_fields_round_trip() -> None:
    msg = _info(3.5, 80, 60)
    msg.distortion_model = 'rational_polynomial'
    msg.d = [0.1, -0.2, 0.001, 0.002, 0.01, 0.0, 0.0, 0.0]
    msg.binning_x, msg.binning_y = 2, 2
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 8, 4, 64, 48
    cache = CameraInfoCache()
    entry = cache.add(msg)
    assert (entry.camera.width, entry.camera.height) == (32, 24)  # binning and ROI applied for the image
    assert entry.camera.distortion_model == 'rational_polynomial' and entry.camera.D.size == 8
    header = type(msg.header)()
    header.frame_id = 'cam'
    header.stamp.sec = 7
    out = entry.fields.to_message(header)
    assert out.header.stamp.sec == 7 and out.header.frame_id == 'cam'
    for name in ('width', 'height', 'distortion_model', 'binning_x', 'binning_y'):
        assert getattr(out, name) == getattr(msg, name), name
    for name in ('d', 'k', 'r', 'p'):
        assert list(getattr(out, name)) == list(getattr(msg, name)), name
    assert (out.roi.x_offset, out.roi.y_offset, out.roi.width, out.roi.height) == (8, 4, 64, 48)


def test_no_wait_for_a_camera_info_that_came_but_was_rejected() -> None:
    cache = CameraInfoCache()
    cache.add(_info(1.0))
    assert cache.lookup('cam', 1 * S).exact  # 'cam' is in use, its camera_infos carry the image stamps
    broken = _info(2.0)
    broken.k = [0.0] * 9
    cache.note_rejected(broken)  # what the node does when add() raises
    start = time.monotonic()
    found = cache.lookup('cam', 2 * S, wait_s=1.0)
    assert not found.exact and time.monotonic() - start < 0.5


def test_a_busy_worker_still_finds_the_images_own_camera_info() -> None:
    """issue 17 (7): under load the worker looks an image up after many newer camera_infos came (K changes per
    frame). The image's own was evicted by arrival order, and the image went with a newer, wrong one. Pinned
    when the image arrives (expect), it stays; no clock involved."""
    cache = CameraInfoCache(history=4)
    cache.add(_info(1.0, fx=50.0))
    cache.expect('cam', 2 * S)                  # the image came first (CameraPublisher order) ...
    cache.add(_info(2.0, fx=70.0))              # ... then its camera_info ...
    for i in range(3, 12):                      # ... then many more while the worker was busy
        cache.add(_info(float(i), fx=50.0 + i))
    found = cache.lookup('cam', 2 * S)
    assert found.exact and found.entry.camera.fx == 70.0
    # looked up: no longer pinned, evicted like any other; memory stays bounded with pins that never resolve
    for i in range(12, 40):
        cache.expect('cam', i * S + 1)
        cache.add(_info(float(i), fx=50.0))
    assert cache.entry_count() <= 2 * 4
    assert not cache.lookup('cam', 2 * S).exact
