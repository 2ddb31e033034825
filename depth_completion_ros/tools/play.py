"""``depth-completion play BAG``: rosbag2 playback without the ROS CLI (rosbags reads, rclpy publishes).

Messages are published as their serialized CDR bytes (``Publisher.publish(bytes)``): no deserialization, so
playback keeps up with large images and clouds. Options follow ``ros2 bag play``: ``--rate``, ``--loop``,
``--start-offset``, ``--topics``, ``--remap``, ``--qos``, ``--clock``. Types whose Python package is not
importable here (``tf2_msgs`` through the pip wheels) are skipped with a note.

Before the first message the player can wait until every topic it publishes has a subscriber
(``--wait-for-subscribers``), so a freshly started node misses nothing. Ctrl-C stops it between messages:
the report is still printed (and written) and the exit status is 130.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from depth_completion_ros.ros import bagio
from depth_completion_ros.ros.runtime import ensure_local_ros
from depth_completion_ros.tools.common import CliError

SUBSCRIBER_SETTLE_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 folder (mcap or sqlite3)')
    parser.add_argument('--rate', type=float, default=1.0, help='playback speed factor')
    parser.add_argument('--loop', action='store_true', help='start over at the end (until interrupted)')
    parser.add_argument('--loops', type=int, default=0, help='with --loop: stop after this many passes (0 = forever)')
    parser.add_argument('--start-offset', type=float, default=0.0, help='skip this many seconds of the bag')
    parser.add_argument('--topics', nargs='+', default=None, help='only these topics')
    parser.add_argument('--remap', nargs='+', default=[], metavar='FROM:=TO', help='rename topics on output')
    parser.add_argument('--qos', choices=('reliable', 'best_effort'), default='reliable',
                        help='publisher reliability (reliable reaches every subscriber; best_effort mimics a driver)')
    parser.add_argument('--qos-depth', type=int, default=10, help='publisher history depth')
    parser.add_argument('--clock', action='store_true', help='publish /clock (rosgraph_msgs/Clock) for use_sim_time')
    parser.add_argument('--clock-hz', type=float, default=50.0, help='/clock rate between messages')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='SECONDS',
                        help='before the first message, wait up to this long for the subscribers (a node that is '
                             'still starting misses nothing): every topic of --wait-topics, or, without it, until '
                             'some topic has a subscriber and no new one appeared for 1 s; then plays anyway, '
                             'with a warning')
    parser.add_argument('--wait-topics', nargs='+', default=None,
                        help='topics (bag names) that need a subscriber before playing (default: see above)')
    parser.add_argument('--pace-topic', default=None, metavar='OUTPUT_TOPIC',
                        help='closed loop: publish the next --pace-on message only after one more message arrived '
                             'here (e.g. /depth_completion/depth), so a slow node sees every frame')
    parser.add_argument('--pace-on', default='/camera/image_raw', help='bag topic that starts a frame (pacing)')
    parser.add_argument('--pace-timeout', type=float, default=30.0, help='longest wait for one output (s)')
    parser.add_argument('--delay', type=float, default=0.0, help='sleep this long before playing')
    parser.add_argument('--report', default=None, help='write a JSON report (counts, timing) to this file')
    parser.add_argument('--network', action='store_true',
                        help='use the normal ROS network settings instead of this-machine-only shared memory')


def parse_remaps(pairs: list[str]) -> dict[str, str]:
    remaps = {}
    for pair in pairs:
        if ':=' not in pair:
            raise ValueError(f'remap {pair!r} must look like /from:=/to')
        source, target = pair.split(':=', 1)
        remaps[source] = target
    return remaps


class BagPlayer:
    """Publishes a bag's serialized messages on rclpy publishers with the bag's timing (scaled by ``rate``)."""

    def __init__(self, node: Any, bag: str | Path, rate: float = 1.0, topics: list[str] | None = None,
                 remaps: dict[str, str] | None = None, qos: str = 'reliable', qos_depth: int = 10,
                 clock: bool = False, clock_hz: float = 50.0, start_offset_s: float = 0.0) -> None:
        from depth_completion_ros.ros.qos import latched_qos, make_qos

        if rate <= 0:
            raise ValueError(f'rate must be > 0, got {rate}')
        self.node = node
        self.bag = Path(bag)
        self.rate = rate
        self.remaps = remaps or {}
        self.clock_period = 1.0 / clock_hz if clock_hz > 0 else 0.0
        self.start_offset_ns = int(start_offset_s * 1e9)
        self.published: Counter[str] = Counter()
        self.skipped_types: dict[str, str] = {}
        available = bagio.bag_topics(self.bag)
        wanted = topics if topics is not None else list(available)
        missing = [t for t in wanted if t not in available]
        if missing:
            raise ValueError(f'topics not in the bag: {missing} (the bag has {sorted(available)})')
        profile = make_qos(qos, qos_depth)
        # topics recorded from transient-local publishers (/tf_static) are offered that way again, with room
        # for all their messages, so tf2 and RViz (transient-local subscribers) get them even when late
        self.latched = bagio.latched_topics(self.bag)
        self.publishers: dict[str, Any] = {}
        for topic in wanted:
            msgtype, count = available[topic]
            msg_cls = bagio.rclpy_class(msgtype)
            if msg_cls is None:
                self.skipped_types[topic] = msgtype
                continue
            topic_profile = profile
            if topic in self.latched:
                topic_profile = latched_qos()
                topic_profile.depth = max(1, min(int(count), 100))
            self.publishers[topic] = node.create_publisher(msg_cls, self.remaps.get(topic, topic), topic_profile)
        self.pace: tuple[str, Any, float] | None = None
        self.pace_received = 0
        self.pace_timeouts = 0
        self.clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self.clock_pub = node.create_publisher(Clock, '/clock', 10)

    def enable_pacing(self, output_topic: str, msgtype_cls: Any, frame_topic: str, timeout_s: float) -> None:
        """Closed-loop playback: before each ``frame_topic`` message wait until the previous frame's output
        arrived on ``output_topic`` (bag timing is kept otherwise)."""
        from depth_completion_ros.ros.qos import make_qos

        def on_output(_msg: Any) -> None:
            self.pace_received += 1

        self.node.create_subscription(msgtype_cls, output_topic, on_output, make_qos('best_effort', 10))
        self.pace = (frame_topic, None, timeout_s)

    def _wait_for_pace(self, topic: str) -> None:
        import rclpy

        if self.pace is None or topic != self.pace[0]:
            return
        expected = self.published[topic]  # outputs for every frame sent so far
        deadline = time.monotonic() + self.pace[2]
        while self.pace_received < expected and time.monotonic() < deadline and rclpy.ok():
            rclpy.spin_once(self.node, timeout_sec=0.02)
        if self.pace_received < expected:
            self.pace_timeouts += 1
            self.pace_received = expected  # do not wait twice for a frame the node dropped

    def wait_for_subscribers(self, timeout_s: float, topics: list[str] | None = None,
                             settle_s: float = SUBSCRIBER_SETTLE_S) -> bool:
        """Block until the subscribers are there (at most ``timeout_s``); True when they are.

        With ``topics``: every one of them has a subscriber. Without: at least one topic has one and the set of
        matched topics has not changed for ``settle_s`` (a node creates all its subscriptions at once; topics
        nobody reads, such as a ground-truth topic, must not hold playback back).
        """
        publishers = {t: p for t, p in self.publishers.items() if topics is None or t in topics}
        deadline = time.monotonic() + timeout_s
        matched: frozenset[str] = frozenset()
        changed_at = time.monotonic()
        while time.monotonic() < deadline:
            now_matched = frozenset(t for t, p in publishers.items() if p.get_subscription_count() > 0)
            if now_matched != matched:
                matched, changed_at = now_matched, time.monotonic()
            if len(matched) == len(publishers):
                return True
            if topics is None and matched and time.monotonic() - changed_at >= settle_s:
                return True
            time.sleep(0.05)
        return False

    def _publish_clock(self, bag_time_ns: int) -> None:
        if self.clock_pub is None:
            return
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_time_ns), 1_000_000_000)
        self.clock_pub.publish(msg)

    def play_once(self, should_stop: Any = lambda: False) -> int:
        """One pass over the bag; returns the number of messages published."""
        count = 0
        wall_start: float | None = None
        bag_start: int | None = None
        next_clock = 0.0
        for message in bagio.read_raw(self.bag, list(self.publishers)):
            if should_stop():
                break
            if bag_start is None:
                bag_start = message.log_time_ns + self.start_offset_ns
            if message.log_time_ns < bag_start:
                continue
            if self.pace is not None and message.topic == self.pace[0]:
                self._wait_for_pace(message.topic)
                # shift the schedule so the bag's inter-message timing resumes from now
                if wall_start is not None:
                    lag = time.monotonic() - (wall_start + (message.log_time_ns - bag_start) / 1e9 / self.rate)
                    if lag > 0:
                        wall_start += lag
            if wall_start is None:
                wall_start = time.monotonic()
            due = wall_start + (message.log_time_ns - bag_start) / 1e9 / self.rate
            while True:  # sleep until due, ticking /clock meanwhile
                now = time.monotonic()
                if now >= due or should_stop():
                    break
                if self.clock_pub is not None and now >= next_clock:
                    elapsed_bag_ns = int((now - wall_start) * self.rate * 1e9)
                    self._publish_clock(bag_start + elapsed_bag_ns)
                    next_clock = now + self.clock_period
                time.sleep(min(due - now, self.clock_period or 0.01, 0.01))
            self._publish_clock(message.log_time_ns)
            self.publishers[message.topic].publish(message.data)  # serialized CDR bytes as they are
            self.published[message.topic] += 1
            count += 1
        return count


def main(args: argparse.Namespace) -> int:
    ensure_local_ros(network=args.network)
    import rclpy
    from rclpy.executors import ExternalShutdownException

    try:
        remaps = parse_remaps(args.remap)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not (Path(args.bag) / 'metadata.yaml').is_file():
        raise CliError(f'not a rosbag2 folder (no metadata.yaml): {args.bag} (give the bag\'s folder, e.g. one '
                       f'made by `depth-completion make-bag`)')
    if args.rate <= 0:
        raise CliError(f'--rate must be > 0, got {args.rate}')
    rclpy.init()
    node = rclpy.create_node('depth_completion_player')
    status = 0
    interrupted = False
    player: BagPlayer | None = None
    start = time.monotonic()
    try:
        player = BagPlayer(node, args.bag, rate=args.rate, topics=args.topics, remaps=remaps, qos=args.qos,
                           qos_depth=args.qos_depth, clock=args.clock, clock_hz=args.clock_hz,
                           start_offset_s=args.start_offset)
        for topic, msgtype in player.skipped_types.items():
            print(f'play: skipping {topic} ({msgtype}: its Python message package is not importable here)',
                  file=sys.stderr)
        if args.wait_for_subscribers > 0:
            waited = time.monotonic()
            print(f'play: waiting up to {args.wait_for_subscribers:g} s for subscribers '
                  f'({", ".join(args.wait_topics) if args.wait_topics else "any topic of the bag"}) ...', flush=True)
            ready = player.wait_for_subscribers(args.wait_for_subscribers, args.wait_topics)
            heard = sorted(t for t, p in player.publishers.items() if p.get_subscription_count() > 0)
            if ready:
                print(f'play: subscribed after {time.monotonic() - waited:.1f} s: {", ".join(heard)}', flush=True)
            else:
                print(f'play: warning: after {args.wait_for_subscribers:g} s only {len(heard)} topic(s) have a '
                      f'subscriber ({", ".join(heard) or "none"}); playing anyway', file=sys.stderr, flush=True)
        if args.pace_topic:
            from sensor_msgs.msg import Image

            player.enable_pacing(args.pace_topic, Image, args.pace_on, args.pace_timeout)
            time.sleep(0.5)  # let the pacing subscription match
        if args.delay > 0:
            time.sleep(args.delay)
        passes = 0
        while rclpy.ok():
            player.play_once(should_stop=lambda: not rclpy.ok())
            passes += 1
            if not args.loop or (args.loops and passes >= args.loops):
                break
        interrupted = not rclpy.ok()  # rclpy's SIGINT handler shut the context down mid-pass
        if not interrupted:
            time.sleep(0.2)  # let the last reliable messages go out before the participant disappears
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted = True
    except ValueError as exc:
        print(f'depth-completion play: error: {exc}', file=sys.stderr)
        status = 2
    except Exception:
        if rclpy.ok():
            raise
        interrupted = True  # e.g. RCLError "publisher's context is invalid" after SIGINT: a stop, not a bug
    finally:
        report = {'published': dict(player.published) if player else {},
                  'pace_timeouts': player.pace_timeouts if player else 0,
                  'duration_s': round(time.monotonic() - start, 3),
                  'skipped': player.skipped_types if player else {}}
        print('play: ' + json.dumps(report), flush=True)
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=2))
        node.destroy_node()
        rclpy.try_shutdown()
    if interrupted:
        raise KeyboardInterrupt  # cli.main: "interrupted", exit 130
    return status
