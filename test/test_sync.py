"""Approximate-time pairing (ros/sync.py): pure Python, no ROS needed."""
from __future__ import annotations

import pytest

from depth_completion_ros.ros.sync import ApproximateTimeSync, Outcome, Side

MS = 1_000_000  # ns
T0 = 1_700_000_000 * 1_000_000_000  # a realistic epoch stamp


def test_pairs_within_slop_and_not_beyond() -> None:
    sync = ApproximateTimeSync(slop_s=0.02)
    assert sync.add_image(T0, 'img0').outcome is Outcome.QUEUED
    result = sync.add_depth(T0 + 15 * MS, 'cloud0')
    assert result.outcome is Outcome.MATCHED
    assert (result.pair.image, result.pair.depth) == ('img0', 'cloud0')
    assert result.pair.skew_s == pytest.approx(0.015)

    assert sync.add_image(T0 + 100 * MS, 'img1').outcome is Outcome.QUEUED
    assert sync.add_depth(T0 + 125 * MS, 'cloud1').outcome is Outcome.QUEUED  # 25 ms > slop
    assert sync.stats.matched == 1


def test_closest_partner_is_chosen_and_older_ones_dropped_as_stale() -> None:
    sync = ApproximateTimeSync(slop_s=0.05, queue_size=10)
    for i, offset in enumerate((0, 30, 60)):
        sync.add_depth(T0 + offset * MS, f'cloud{i}')
    result = sync.add_image(T0 + 55 * MS, 'img')
    assert result.outcome is Outcome.MATCHED
    assert result.pair.depth == 'cloud2'  # 5 ms away beats 25 ms away
    assert sync.stats.dropped_stale == 2   # cloud0 and cloud1 will never be processed
    assert sync.pending(Side.DEPTH) == 0 and sync.pending(Side.IMAGE) == 0


def test_freshest_pair_wins_when_both_sides_pile_up() -> None:
    sync = ApproximateTimeSync(slop_s=0.01, queue_size=5)
    # images at 10 Hz, clouds arrive late in a burst (e.g. a slow driver)
    for i in range(3):
        sync.add_image(T0 + i * 100 * MS, f'img{i}')
    assert sync.add_depth(T0 + 0 * MS, 'cloud0').pair.image == 'img0'  # img1, img2 keep waiting
    result = sync.add_depth(T0 + 200 * MS, 'cloud2')
    assert result.outcome is Outcome.MATCHED
    assert (result.pair.image, result.pair.depth) == ('img2', 'cloud2')
    # img1 lost the race: it was older than the emitted pair
    assert sync.stats.matched == 2
    assert sync.stats.dropped_stale == 1
    assert sync.pending(Side.IMAGE) == 0


def test_unreachable_messages_are_dropped_and_counted() -> None:
    sync = ApproximateTimeSync(slop_s=0.02, queue_size=3)
    sync.add_image(T0, 'img0')
    # a cloud 100 ms later: img0 can never be paired any more (clouds only get newer)
    assert sync.add_depth(T0 + 100 * MS, 'cloud').outcome is Outcome.QUEUED
    assert sync.stats.dropped_unmatched == 1
    assert sync.pending(Side.IMAGE) == 0
    # queue overflow drops the oldest: 1 + 5 clouds waiting, 3 kept
    for i in range(5):
        sync.add_depth(T0 + (200 + i) * MS, f'c{i}')
    assert sync.pending(Side.DEPTH) == 3
    assert sync.stats.dropped_unmatched == 1 + 3
    assert sync.stats.dropped == 4


def test_zero_stamp_rejected() -> None:
    sync = ApproximateTimeSync(slop_s=0.05)
    result = sync.add_image(0, 'img')
    assert result.outcome is Outcome.ZERO_STAMP
    assert 'zero' in result.detail
    assert sync.add_depth(0, 'cloud').outcome is Outcome.ZERO_STAMP
    assert sync.stats.zero_stamp == 2 and sync.stats.matched == 0


def test_time_jump_back_resets_and_pairs_again() -> None:
    sync = ApproximateTimeSync(slop_s=0.02, jump_tolerance_s=1.0)
    for i in range(5):
        sync.add_image(T0 + i * 100 * MS, f'img{i}')
        assert sync.add_depth(T0 + i * 100 * MS + MS, f'cloud{i}').outcome is Outcome.MATCHED
    sync.add_image(T0 + 500 * MS, 'waiting')  # left in the queue when the bag loops
    result = sync.add_image(T0 - 10_000 * MS + 5 * MS, 'img_loop')  # the bag started over
    assert result.outcome is Outcome.RESET
    assert 'jumped back' in result.detail
    assert sync.stats.resets == 1
    assert sync.add_depth(T0 - 10_000 * MS, 'cloud_loop').outcome is Outcome.MATCHED


def test_short_bag_loop_resets_with_default_tolerance() -> None:
    sync = ApproximateTimeSync(slop_s=0.02)  # tolerance defaults to the slop: a 0.3 s loop is a jump
    for i in range(3):
        sync.add_image(T0 + i * 100 * MS, 'img')
        sync.add_depth(T0 + i * 100 * MS, 'cloud')
    assert sync.add_image(T0, 'img_again').outcome is Outcome.RESET
    assert sync.add_depth(T0, 'cloud_again').outcome is Outcome.MATCHED


def test_small_reordering_is_dropped_not_reset() -> None:
    sync = ApproximateTimeSync(slop_s=0.02, jump_tolerance_s=1.0)
    sync.add_image(T0 + 100 * MS, 'new')
    result = sync.add_image(T0 + 50 * MS, 'late')
    assert result.outcome is Outcome.OUT_OF_ORDER
    assert sync.stats.resets == 0


def test_runtime_slop_change_and_validation() -> None:
    sync = ApproximateTimeSync(slop_s=0.01)
    sync.add_image(T0, 'img')
    assert sync.add_depth(T0 + 30 * MS, 'cloud').outcome is Outcome.QUEUED
    sync.slop_s = 0.05
    sync.add_image(T0 + 100 * MS, 'img2')
    assert sync.add_depth(T0 + 130 * MS, 'cloud2').outcome is Outcome.MATCHED
    with pytest.raises(ValueError):
        ApproximateTimeSync(slop_s=0.0)
    with pytest.raises(ValueError):
        ApproximateTimeSync(queue_size=0)
