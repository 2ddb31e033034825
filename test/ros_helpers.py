"""Helpers shared by the end-to-end tests that drive a node subprocess from the test process (rclpy).

Imported by test modules as ``ros_helpers`` (pytest puts ``test/`` on sys.path); rclpy is imported lazily so that
collecting the tests works without a middleware.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from depth_completion_ros.core.conversions import stamp_to_ns
from depth_completion_ros.ros.runtime import NODE_MODULE, RosProcess, module_args, node_arguments


def stamp_ns(msg: Any) -> int:
    """header.stamp of a message in nanoseconds."""
    return stamp_to_ns(msg.header.stamp)


def start_node(log_path: Any, params: dict | None = None, remaps: dict | None = None,
               ready_timeout_s: float = 120.0) -> RosProcess:
    """The node in a subprocess with ``-p``/``-r`` arguments, once it logged ``ready:`` (else fail with its log)."""
    node = RosProcess('node', module_args(NODE_MODULE, *node_arguments(params=params, remaps=remaps)), log_path)
    assert node.wait_for_output('ready:', ready_timeout_s), node.output()[-2000:]
    return node


class TopicDriver:
    """One rclpy node in the test process: publishers of a node's inputs and subscribers that keep every output
    message by key and stamp (``received[key][stamp_ns] = msg``)."""

    def __init__(self, name: str) -> None:
        import rclpy

        if not rclpy.ok():
            rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node(name)
        self.received: dict[str, dict[int, Any]] = {}
        self.subscriptions: list[Any] = []

    def publisher(self, msg_type: type, topic: str, qos: str = 'reliable', depth: int = 5) -> Any:
        from depth_completion_ros.ros.qos import make_qos

        return self.node.create_publisher(msg_type, topic, make_qos(qos, depth))

    def subscribe(self, key: str, msg_type: type, topic: str, qos: str = 'reliable', depth: int = 10) -> None:
        from depth_completion_ros.ros.qos import make_qos

        store = self.received.setdefault(key, {})

        def callback(msg: Any) -> None:
            store[stamp_ns(msg)] = msg

        self.subscriptions.append(self.node.create_subscription(msg_type, topic, callback, make_qos(qos, depth)))

    def spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)
            if condition():
                return True
        return False

    def wait_matched(self, publishers: list[Any], node_process: RosProcess, timeout_s: float = 20.0) -> None:
        """Until the node subscribed to every publisher and every subscription here sees a publisher (else fail
        with the end of the node's log): an output published before discovery completes is never delivered."""
        def matched() -> bool:
            return (all(p.get_subscription_count() > 0 for p in publishers)
                    and all(s.get_publisher_count() > 0 for s in self.subscriptions))

        assert self.spin_until(matched, timeout_s), node_process.output()[-2000:]

    def expect_output(self, stamp: int, keys: tuple[str, ...], timeout_s: float = 10.0) -> bool:
        """True once a message with ``stamp`` arrived for every key."""
        return self.spin_until(lambda: all(stamp in self.received[k] for k in keys), timeout_s)

    def close(self) -> None:
        self.node.destroy_node()
