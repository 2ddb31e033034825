"""Approximate-time pairing of a camera image with a depth source (cloud or depth image), written by us.

Why not message_filters: it is not installable here, its Python synchroniser runs the user callback while
holding its lock, defaults to reliable QoS and overwrites messages with equal stamps (docs ROS.md §3).
This class is pure Python (no rclpy): the node feeds it ``(stamp_ns, message)`` from the executor thread
and gets a :class:`MatchedPair` back when one is ready; the expensive work then happens elsewhere.

Policy
- A pair is two messages, one per side, whose stamps differ by at most ``slop``.
- On every arrival we look for the closest partner among the waiting messages of the other side; if one is
  within ``slop`` the pair is emitted at once (low latency) and everything older on both sides is dropped as
  *stale*: the freshest pair wins, older ones are not worth processing any more.
- A waiting message that no future partner can reach (older than the other side's newest stamp minus
  ``slop``, stamps being monotonic per side) is dropped as *unmatched*; queue overflow drops the oldest.
- A zero stamp (drivers that never fill the header) is rejected and counted: it can never be paired sensibly.
- Time going backwards on one side by more than ``jump_tolerance`` (default: ``slop``; a bag loop, a
  restarted driver) clears both queues and counts a reset; the caller logs a warning. A smaller step back is
  reordering and that message alone is dropped.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Msg = TypeVar('Msg')

NS_PER_S = 1_000_000_000


class Side(enum.Enum):
    IMAGE = 'image'
    DEPTH = 'depth'  # the depth source: a PointCloud2 or a depth Image

    @property
    def other(self) -> Side:
        return Side.DEPTH if self is Side.IMAGE else Side.IMAGE


class Outcome(enum.Enum):
    MATCHED = 'matched'          # a pair was produced
    QUEUED = 'queued'            # waiting for a partner
    ZERO_STAMP = 'zero_stamp'    # rejected: header stamp is 0
    OUT_OF_ORDER = 'out_of_order'  # rejected: not newer than the last message of its side (within tolerance)
    RESET = 'reset'              # time went backwards: queues cleared, this message queued afterwards


@dataclass
class SyncStats:
    """Counters since start (never reset, so rates can be derived by differencing)."""
    received: dict[str, int] = field(default_factory=lambda: {'image': 0, 'depth': 0})
    matched: int = 0
    dropped_stale: int = 0       # older messages discarded because a fresher pair was emitted
    dropped_unmatched: int = 0   # messages no partner can reach any more (or queue overflow)
    zero_stamp: int = 0
    resets: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_stale + self.dropped_unmatched + self.zero_stamp

    def as_dict(self) -> dict[str, Any]:
        return {'received_image': self.received['image'], 'received_depth': self.received['depth'],
                'matched': self.matched, 'dropped_stale': self.dropped_stale,
                'dropped_unmatched': self.dropped_unmatched, 'zero_stamp': self.zero_stamp,
                'resets': self.resets}


@dataclass
class MatchedPair(Generic[Msg]):
    image_stamp_ns: int
    image: Msg
    depth_stamp_ns: int
    depth: Msg

    @property
    def skew_s(self) -> float:
        return abs(self.image_stamp_ns - self.depth_stamp_ns) / NS_PER_S


@dataclass
class SyncResult(Generic[Msg]):
    outcome: Outcome
    pair: MatchedPair[Msg] | None = None
    detail: str = ''


class ApproximateTimeSync(Generic[Msg]):
    """Pairs image and depth-source messages by header stamp within ``slop`` seconds (see module docstring)."""

    def __init__(self, slop_s: float = 0.05, queue_size: int = 5, jump_tolerance_s: float | None = None) -> None:
        if slop_s <= 0:
            raise ValueError(f'slop must be > 0 s, got {slop_s}')
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        self.slop_ns = int(round(slop_s * NS_PER_S))
        self.queue_size = queue_size
        self._jump_tolerance_ns = None if jump_tolerance_s is None else int(round(jump_tolerance_s * NS_PER_S))
        self.stats = SyncStats()
        self._queues: dict[Side, deque[tuple[int, Msg]]] = {Side.IMAGE: deque(), Side.DEPTH: deque()}
        self._newest: dict[Side, int | None] = {Side.IMAGE: None, Side.DEPTH: None}

    @property
    def jump_tolerance_ns(self) -> int:
        return self.slop_ns if self._jump_tolerance_ns is None else self._jump_tolerance_ns

    @property
    def slop_s(self) -> float:
        return self.slop_ns / NS_PER_S

    @slop_s.setter
    def slop_s(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f'slop must be > 0 s, got {value}')
        self.slop_ns = int(round(value * NS_PER_S))

    def pending(self, side: Side) -> int:
        return len(self._queues[side])

    def reset(self) -> None:
        """Forget everything waiting (counters are kept)."""
        for side in Side:
            self._queues[side].clear()
            self._newest[side] = None

    def add_image(self, stamp_ns: int, msg: Msg) -> SyncResult[Msg]:
        return self.add(Side.IMAGE, stamp_ns, msg)

    def add_depth(self, stamp_ns: int, msg: Msg) -> SyncResult[Msg]:
        return self.add(Side.DEPTH, stamp_ns, msg)

    def add(self, side: Side, stamp_ns: int, msg: Msg) -> SyncResult[Msg]:
        self.stats.received[side.value] += 1
        if stamp_ns <= 0:
            self.stats.zero_stamp += 1
            return SyncResult(Outcome.ZERO_STAMP, detail=f'{side.value} message has a zero header stamp')

        outcome = Outcome.QUEUED
        detail = ''
        newest = self._newest[side]
        if newest is not None and stamp_ns < newest - self.jump_tolerance_ns:
            # A bag loop or a restarted sensor: old partners would pair with nonsense, start over.
            detail = (f'{side.value} stamp jumped back {(newest - stamp_ns) / NS_PER_S:.3f} s: '
                      f'sync queues reset')
            self._count_dropped_unmatched(sum(len(q) for q in self._queues.values()))
            self.reset()
            self.stats.resets += 1
            outcome = Outcome.RESET
        elif newest is not None and stamp_ns <= newest:
            # Small reordering within tolerance or an exact duplicate stamp: keep the newest we have.
            self.stats.dropped_stale += 1
            return SyncResult(Outcome.OUT_OF_ORDER,
                              detail=f'{side.value} message not newer than the last one: dropped')
        self._newest[side] = stamp_ns

        partner_queue = self._queues[side.other]
        best_index = -1
        best_delta = self.slop_ns + 1
        for index, (partner_stamp, _partner) in enumerate(partner_queue):
            delta = abs(partner_stamp - stamp_ns)
            if delta < best_delta or (delta == best_delta and index > best_index):
                best_index, best_delta = index, delta
        if best_index >= 0 and best_delta <= self.slop_ns:
            partner_stamp, partner = partner_queue[best_index]
            # Everything older than the partner on its side, and everything waiting on our side (all older
            # than this message), will never be worth processing: the fresher pair wins.
            for _ in range(best_index + 1):
                partner_queue.popleft()
            self.stats.dropped_stale += best_index + len(self._queues[side])
            self._queues[side].clear()
            self.stats.matched += 1
            if side is Side.IMAGE:
                pair = MatchedPair(stamp_ns, msg, partner_stamp, partner)
            else:
                pair = MatchedPair(partner_stamp, partner, stamp_ns, msg)
            return SyncResult(Outcome.MATCHED, pair=pair, detail=detail)

        # No partner yet. Partners older than (this stamp - slop) can never match now: drop them.
        while partner_queue and partner_queue[0][0] < stamp_ns - self.slop_ns:
            partner_queue.popleft()
            self._count_dropped_unmatched(1)
        own_queue = self._queues[side]
        own_queue.append((stamp_ns, msg))
        while len(own_queue) > self.queue_size:
            own_queue.popleft()
            self._count_dropped_unmatched(1)
        return SyncResult(outcome, detail=detail)

    def _count_dropped_unmatched(self, count: int) -> None:
        self.stats.dropped_unmatched += count
