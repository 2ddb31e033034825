"""``depth-completion record TOPIC[:TYPE] ... --out BAG``: record topics to a rosbag2 (mcap) without the ROS CLI.

Subscriptions are raw (serialized bytes go straight into the bag, nothing is deserialized). A topic's type is
given as ``/topic:pkg/msg/Type`` or discovered from the graph. ``--qos auto`` follows rosbag2: reliable when
every publisher found is reliable, else best effort (which hears both). The recorder prints ``READY`` once it
is subscribed (and, with ``--wait-for-publishers``, matched), and closes the bag cleanly on SIGINT/SIGTERM,
after ``--duration`` or after ``--idle-timeout`` seconds without a message.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from depth_completion_ros.ros import bagio
from depth_completion_ros.ros.runtime import ensure_local_ros
from depth_completion_ros.tools.output_dir import OutputDir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('topics', nargs='+', metavar='TOPIC[:TYPE]', help='topics to record, e.g. '
                        '/depth_completion/depth or /depth_completion/depth:sensor_msgs/msg/Image')
    parser.add_argument('--out', required=True,
                        help='output bag folder: a new one, or a previous record output (replaced when it closes)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace --out even when it holds files record did not write')
    parser.add_argument('--qos', choices=('auto', 'reliable', 'best_effort'), default='auto',
                        help='subscription reliability')
    parser.add_argument('--discovery-timeout', type=float, default=10.0,
                        help='seconds to wait for the type of topics given without one')
    parser.add_argument('--wait-for-publishers', action='store_true',
                        help='print READY only once every topic has a matched publisher')
    parser.add_argument('--duration', type=float, default=0.0, help='stop after this many seconds (0 = never)')
    parser.add_argument('--idle-timeout', type=float, default=0.0,
                        help='stop when no message arrived for this many seconds after the first (0 = never)')
    parser.add_argument('--idle-topics', nargs='+', default=None,
                        help='only messages on these topics count as activity for --idle-timeout (default: all; '
                             'leave out periodic topics such as /diagnostics)')
    parser.add_argument('--progress', default=None, metavar='TOPIC',
                        help='print a PROGRESS line for every message on this topic (for scripts)')
    parser.add_argument('--max-messages', type=int, default=0, help='stop after this many messages (0 = never)')
    parser.add_argument('--network', action='store_true',
                        help='use the normal ROS network settings instead of this-machine-only shared memory')


def parse_topic(spec: str) -> tuple[str, str | None]:
    if ':' in spec:
        topic, msgtype = spec.split(':', 1)
        if msgtype.count('/') != 2:
            raise ValueError(f'type of {topic} must look like pkg/msg/Name, got {msgtype!r}')
        return topic, msgtype
    return spec, None


class Recorder:
    def __init__(self, node: Any, out: str | Path, topics: dict[str, str], qos: str = 'auto',
                 idle_topics: list[str] | None = None, progress_topic: str | None = None) -> None:
        from rclpy.qos import ReliabilityPolicy

        from depth_completion_ros.ros.qos import make_qos

        self.node = node
        self.idle_topics = set(idle_topics) if idle_topics else set(topics)
        self.progress_topic = progress_topic
        self.writer = bagio.BagWriter(out)
        self.counts: dict[str, int] = {topic: 0 for topic in topics}
        self.last_message = 0.0
        self.first_message = 0.0
        self.subscriptions: dict[str, Any] = {}
        for topic, msgtype in topics.items():
            msg_cls = bagio.rclpy_class(msgtype)
            if msg_cls is None:
                raise ValueError(f'cannot subscribe to {topic}: {msgtype} is not importable here')
            reliability = qos
            if qos == 'auto':
                infos = node.get_publishers_info_by_topic(topic)
                reliable = infos and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
                reliability = 'reliable' if reliable else 'best_effort'
            self.writer.connection(topic, msgtype)
            self.subscriptions[topic] = node.create_subscription(
                msg_cls, topic, self._callback(topic, msgtype), make_qos(reliability, 100), raw=True)

    def _callback(self, topic: str, msgtype: str) -> Any:
        def on_message(data: bytes) -> None:
            if topic in self.idle_topics:
                now = time.monotonic()
                self.first_message = self.first_message or now
                self.last_message = now
            self.writer.write_raw(topic, msgtype, self.node.get_clock().now().nanoseconds, data)
            self.counts[topic] += 1
            if topic == self.progress_topic:
                print(f'PROGRESS {topic} {self.counts[topic]}', flush=True)
        return on_message

    def all_matched(self) -> bool:
        return all(s.get_publisher_count() > 0 for s in self.subscriptions.values())

    def close(self) -> None:
        self.writer.close()


def discover_types(node: Any, topics: dict[str, str | None], timeout_s: float) -> dict[str, str]:
    import rclpy

    resolved = {t: m for t, m in topics.items() if m}
    deadline = time.monotonic() + timeout_s
    while len(resolved) < len(topics) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
        graph = dict(node.get_topic_names_and_types())
        for topic in topics:
            if topic not in resolved and graph.get(topic):
                resolved[topic] = graph[topic][0]
    missing = [t for t in topics if t not in resolved]
    if missing:
        raise ValueError(f'no publisher seen for {missing} within {timeout_s} s: give their types as TOPIC:TYPE')
    return resolved


def main(args: argparse.Namespace) -> int:
    ensure_local_ros(network=args.network)
    import rclpy
    from rclpy.executors import ExternalShutdownException

    try:
        wanted = dict(parse_topic(spec) for spec in args.topics)
    except ValueError as exc:
        print(f'depth-completion record: error: {exc}', file=sys.stderr)
        return 2
    # The bag is written beside --out and renamed when it is closed: a recorder that fails to start leaves
    # nothing, and a previous bag at --out is replaced only by a complete one.
    output = OutputDir(args.out, 'record', args.overwrite, create=False)
    rclpy.init()
    node = rclpy.create_node('depth_completion_recorder')
    recorder: Recorder | None = None
    status = 0
    try:
        types = discover_types(node, wanted, args.discovery_timeout)
        output.open()
        recorder = Recorder(node, output.work, types, args.qos, args.idle_topics, args.progress)
        if args.wait_for_publishers:
            deadline = time.monotonic() + args.discovery_timeout
            while not recorder.all_matched() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.05)
        print('READY', flush=True)
        start = time.monotonic()
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
            now = time.monotonic()
            if args.duration and now - start >= args.duration:
                break
            if args.idle_timeout and recorder.last_message and now - recorder.last_message >= args.idle_timeout:
                break
            if args.max_messages and sum(recorder.counts.values()) >= args.max_messages:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileExistsError) as exc:
        print(f'depth-completion record: error: {exc}', file=sys.stderr)
        status = 2
    finally:
        if recorder is not None:
            recorder.close()
            output.commit()
            print('record: ' + json.dumps({'bag': str(args.out), 'counts': recorder.counts}), flush=True)
        output.discard()
        node.destroy_node()
        rclpy.try_shutdown()
    return status
