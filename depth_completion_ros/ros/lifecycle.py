"""The managed (lifecycle) variant of the node: ``depth_completion_node --lifecycle`` or
``depth_completion_lifecycle_node``.

A robot stack starts its perception in order (load the model, wait for the sensors, go active, release the GPU
when paused); the transitions come over the standard ``lifecycle_msgs`` services (``~/change_state``,
``~/get_state``, ...), e.g. from ``ros2 lifecycle set`` or a lifecycle manager (Nav2's):

- configure: read the parameters, load the weights, warm up; publishers made (silent until active);
- activate: subscribe and publish;
- deactivate: unsubscribe, drop the waiting frames, publish nothing more; the model stays loaded;
- cleanup: join the worker, destroy the publishers, free the model (and the GPU memory it held);
- shutdown, from any state: the same release, then the process exits 0.

Parameters are declared when the node starts (so ``ros2 param set`` works while unconfigured) and read at
configure: a changed value takes effect at the next configure.
"""
from __future__ import annotations

import sys
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from depth_completion_ros.ros.node import DepthCompletionCore, StartupError
from depth_completion_ros.ros.node import main as node_main
from depth_completion_ros.ros.node_process import LIFECYCLE_FLAG, NODE_NAME


class LifecycleDepthCompletionNode(DepthCompletionCore, LifecycleNode):
    """The node's stages, one per transition (see the module docstring)."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._declare()
        self.finished = False   # set by the shutdown transition: main() leaves its spin loop and exits 0
        self.get_logger().info('unconfigured: waiting for the configure transition')

    def _publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        # Lifecycle publishers: disabled until activate and again after deactivate (whatever the worker does).
        return self.create_lifecycle_publisher(msg_type, topic, qos)

    def _destroy_publisher(self, publisher: Any) -> None:
        self.destroy_lifecycle_publisher(publisher)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            warm_up_ms = self._configure()
        except StartupError as exc:
            self.get_logger().error(f'configure failed: {exc}')
            self._cleanup()  # whatever was made before the failure: the node stays unconfigured
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info('configured: ' + self._ready_line(warm_up_ms))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate()
        result = super().on_activate(state)  # enables the lifecycle publishers
        self.get_logger().info('active: subscribed, publishing')
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        result = super().on_deactivate(state)
        self.get_logger().info('inactive: unsubscribed, the model stays loaded')
        return result

    def _release(self) -> str:
        """Unsubscribe if still taking frames, free the model; what became of the model, for the log."""
        if self._taking:
            self._deactivate()
        return 'model released' if self._cleanup() else 'model still referenced (not freed)'

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().info('unconfigured: ' + self._release())
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().info(f'shutdown from {state.label}: ' + self._release())
        self.finished = True
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # A transition raised: release everything; SUCCESS takes the node back to unconfigured (configurable).
        self.get_logger().error(f'error during a transition from {state.label}: releasing the model')
        self._release()
        return TransitionCallbackReturn.SUCCESS


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``depth_completion_lifecycle_node``: the node's ``main`` with ``--lifecycle``."""
    argv = list(sys.argv if argv is None else argv)
    return node_main([argv[0], LIFECYCLE_FLAG, *argv[1:]] if argv else ['depth_completion_node', LIFECYCLE_FLAG])


if __name__ == '__main__':
    sys.exit(main())
