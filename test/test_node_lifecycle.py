"""The lifecycle node (issue 18, item 2), driven through the standard lifecycle_msgs services from this process:
nothing subscribed before activate, nothing published after deactivate, the model released at cleanup, exit 0
when shut down from any state."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from ros_helpers import TopicDriver

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.ros.runtime import NODE_MODULE, OUTPUT_NS, RosProcess, module_args, node_arguments

pytestmark = [pytest.mark.ros, pytest.mark.slow]

WIDTH, HEIGHT = 64, 48
CAMERA = CameraModel.from_intrinsics(60.0, 60.0, 32.0, 24.0, WIDTH, HEIGHT, frame_id='cam')
REMAPS = {'image': '/lc/image', 'camera_info': '/lc/camera_info', 'points': '/lc/points'}
PARAMS = {'model.device': 'cpu', 'extrinsics.source': 'parameters', 'sync.slop': 0.02}


class LifecycleDriver(TopicDriver):
    """Inputs, the depth output and the node's lifecycle services."""

    def __init__(self) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        super().__init__('lifecycle_driver')
        self.inputs = [self.publisher(CameraInfo, '/lc/camera_info'), self.publisher(Image, '/lc/image'),
                       self.publisher(PointCloud2, '/lc/points')]
        self.subscribe('depth', Image, f'{OUTPUT_NS}/depth')
        self.change_state = self.node.create_client(ChangeState, f'{OUTPUT_NS}/change_state')
        self.get_state = self.node.create_client(GetState, f'{OUTPUT_NS}/get_state')
        self.stamp_s = 200

    def call(self, client: object, request: object) -> object:
        assert client.wait_for_service(timeout_sec=20.0)
        future = client.call_async(request)
        assert self.spin_until(future.done, 60.0), 'no answer from the lifecycle service'
        return future.result()

    def transition(self, transition_id: int) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        return bool(self.call(self.change_state, ChangeState.Request(
            transition=Transition(id=transition_id))).success)

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return str(self.call(self.get_state, GetState.Request()).current_state.label)

    def set_parameter(self, name: str, value: object) -> tuple[bool, str]:
        from rclpy.parameter import Parameter
        from rclpy.parameter_client import AsyncParameterClient

        client = AsyncParameterClient(self.node, 'depth_completion')
        assert client.wait_for_services(timeout_sec=20.0)
        future = client.set_parameters([Parameter(name, value=value)])
        assert self.spin_until(future.done, 20.0)
        result = future.result().results[0]
        return bool(result.successful), str(result.reason)

    def subscribed(self) -> int:
        """How many of the three inputs the node subscribes to."""
        return sum(publisher.get_subscription_count() > 0 for publisher in self.inputs)

    def send(self) -> int:
        from depth_completion_ros.core import conversions

        self.stamp_s += 1
        stamp = (self.stamp_s, 0)
        info_pub, image_pub, cloud_pub = self.inputs
        info_pub.publish(CAMERA.to_camera_info(stamp=stamp))
        image_pub.publish(conversions.numpy_to_image(np.full((HEIGHT, WIDTH, 3), 120, np.uint8), 'rgb8',
                                                     frame_id='cam', stamp=stamp))
        xs, ys = np.meshgrid(np.linspace(-3, 3, 40), np.linspace(-2, 2, 12))
        points = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 5.0)], 1).astype(np.float32)
        cloud_pub.publish(conversions.arrays_to_pointcloud2(points, frame_id='cam', stamp=stamp))
        return self.stamp_s * 10**9


def _start(log: Path, params: dict, module: str = NODE_MODULE, flag: tuple[str, ...] = ('--lifecycle',)) -> RosProcess:
    node = RosProcess('lifecycle', module_args(module, *flag, *node_arguments(params=params, remaps=REMAPS)), log)
    assert node.wait_for_output('unconfigured: waiting', 60.0), node.output()[-2000:]
    return node


def _exit_status(node: RosProcess) -> int | None:
    status = node.wait(30.0)
    if status is None:
        node.stop()
    return status


def test_transitions_through_the_services(tmp_path: Path) -> None:
    from lifecycle_msgs.msg import Transition

    node = _start(tmp_path / 'node.log', PARAMS)
    driver = LifecycleDriver()
    try:
        assert driver.state() == 'unconfigured'
        driver.spin_until(lambda: False, 1.0)
        assert driver.subscribed() == 0, 'subscribed before configure'
        # unconfigured, a start-up parameter may change (configure reads it); once configured it may not
        assert driver.set_parameter('diagnostics.period', 0.5) == (True, '')

        assert driver.transition(Transition.TRANSITION_CONFIGURE), node.output()[-2000:]
        assert driver.state() == 'inactive'
        assert 'configured: input_mode=points' in node.output() and 'model=mini' in node.output()
        driver.spin_until(lambda: False, 1.0)
        assert driver.subscribed() == 0, 'subscribed before activate'

        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        assert driver.state() == 'active'
        accepted, reason = driver.set_parameter('diagnostics.period', 2.0)
        assert not accepted and 'read-only at run time' in reason
        assert driver.spin_until(lambda: driver.subscribed() == 3, 20.0), node.output()[-2000:]
        assert driver.spin_until(lambda: driver.subscriptions[0].get_publisher_count() > 0, 20.0)
        assert any(driver.expect_output(driver.send(), ('depth',), 10.0) for _ in range(5)), node.output()[-2000:]

        assert driver.transition(Transition.TRANSITION_DEACTIVATE)
        assert driver.state() == 'inactive'
        assert driver.spin_until(lambda: driver.subscribed() == 0, 20.0), 'still subscribed after deactivate'
        seen = len(driver.received['depth'])
        for _ in range(3):
            driver.send()
        driver.spin_until(lambda: False, 2.0)
        assert len(driver.received['depth']) == seen, 'published after deactivate'

        # the model stayed loaded: activating again needs no configure and completes at once
        assert driver.transition(Transition.TRANSITION_ACTIVATE)
        assert driver.spin_until(lambda: driver.subscribed() == 3, 20.0)
        assert any(driver.expect_output(driver.send(), ('depth',), 10.0) for _ in range(5)), node.output()[-2000:]
        assert node.output().count('model.weights not set') == 1  # the weights were chosen (loaded) once
        assert driver.transition(Transition.TRANSITION_DEACTIVATE)

        assert driver.transition(Transition.TRANSITION_CLEANUP)
        assert driver.state() == 'unconfigured'
        assert node.wait_for_output('unconfigured: model released', 10.0), node.output()[-2000:]

        # configurable again after cleanup (a fresh model), then shut down from unconfigured after a cleanup
        assert driver.transition(Transition.TRANSITION_CONFIGURE)
        assert driver.transition(Transition.TRANSITION_CLEANUP)
        assert driver.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert _exit_status(node) == 0, node.output()[-2000:]
        log = node.output()
        assert 'shutdown from unconfigured' in log and 'Traceback' not in log, log[-2000:]
    finally:
        driver.close()
        if node.returncode is None:
            node.stop()


@pytest.mark.parametrize('state, steps, shutdown', [
    ('unconfigured', (), 'TRANSITION_UNCONFIGURED_SHUTDOWN'),
    ('inactive', ('TRANSITION_CONFIGURE',), 'TRANSITION_INACTIVE_SHUTDOWN'),
    ('active', ('TRANSITION_CONFIGURE', 'TRANSITION_ACTIVATE'), 'TRANSITION_ACTIVE_SHUTDOWN'),
])
def test_shutdown_from_every_state_exits_0(tmp_path: Path, state: str, steps: tuple[str, ...],
                                           shutdown: str) -> None:
    from lifecycle_msgs.msg import Transition

    # the dedicated executable's module (depth_completion_lifecycle_node); prefill only: no model to load
    node = _start(tmp_path / 'node.log', {**PARAMS, 'prefill_only': True}, 'depth_completion_ros.ros.lifecycle', ())
    driver = LifecycleDriver()
    try:
        for step in steps:
            assert driver.transition(getattr(Transition, step)), node.output()[-2000:]
        assert driver.state() == state
        if state == 'active':  # a frame in flight must not stop the exit
            driver.spin_until(lambda: driver.subscribed() == 3, 20.0)
            driver.send()
        started = time.monotonic()
        assert driver.transition(getattr(Transition, shutdown))
        assert _exit_status(node) == 0, node.output()[-2000:]
        assert time.monotonic() - started < 30.0
        log = node.output()
        assert f'shutdown from {state}' in log and 'Traceback' not in log and 'final stats' in log, log[-2000:]
    finally:
        driver.close()
        if node.returncode is None:
            node.stop()


def test_sigint_in_the_active_state_exits_0(tmp_path: Path) -> None:
    from lifecycle_msgs.msg import Transition

    node = _start(tmp_path / 'node.log', {**PARAMS, 'prefill_only': True})
    driver = LifecycleDriver()
    try:
        assert driver.transition(Transition.TRANSITION_CONFIGURE) and driver.transition(Transition.TRANSITION_ACTIVATE)
    finally:
        driver.close()
    assert node.stop() == 0, node.output()[-2000:]
    assert 'Traceback' not in node.output()
