"""QoS profiles for the node's two sides and for the bag tools.

Defaults that work out of the box (docs ROS.md §1.5, §3.15–16):
- inputs **best effort**: a best-effort subscription matches best-effort drivers *and* reliable publishers
  (a bag replay, `depth-completion play`), whereas a reliable one silently never hears a best-effort driver;
- outputs **reliable**: matches RViz's default (reliable) displays and best-effort subscribers alike.
Volatile durability on both sides (no latched sensor data), keep-last history.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY_CHOICES = ('best_effort', 'reliable')


def make_qos(reliability: str, depth: int = 5) -> QoSProfile:
    if reliability not in RELIABILITY_CHOICES:
        raise ValueError(f'reliability must be one of {RELIABILITY_CHOICES}, got {reliability!r}')
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=max(1, int(depth)),
        reliability=ReliabilityPolicy.BEST_EFFORT if reliability == 'best_effort' else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def latched_qos() -> QoSProfile:
    """Transient-local reliable depth 1: for /tf_static-like one-shot data."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def reliability_name(profile: QoSProfile) -> str:
    return 'reliable' if profile.reliability == ReliabilityPolicy.RELIABLE else 'best_effort'
