"""The process around the node (``depth_completion_node``): the command line checked before ROS starts, the CPU
settings applied before torch loads, SIGINT/SIGTERM as a flag, the spin loop and the one shutdown path (final
counters, exit status). Kept apart from ros/node.py, which is the pipeline.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from depth_completion_ros.core.cpu_runtime import configure_cpu
from depth_completion_ros.ros import params as param_table
from depth_completion_ros.ros.node_parameters import StartupError

NODE_NAME = 'depth_completion'
# Start-up CPU parameters -> configure_cpu() keywords (applied before torch is imported).
CPU_PARAMETERS = {'cpu.threads': 'threads', 'cpu.wait_policy': 'wait_policy', 'cpu.malloc': 'malloc'}
LIFECYCLE_FLAG = '--lifecycle'


class ShutdownRequest:
    """SIGINT and SIGTERM only set a flag (rclpy's own handlers would invalidate the context under a running
    executor and the worker's publishers: tracebacks and errors); the spin loop checks it and shuts down."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ''
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if not self.event.is_set():
            self.signal_name = signal.Signals(signum).name
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()


def run(argv: list[str], make_node: Callable[[bool], Any]) -> int:
    """Check the command line, set up the CPU and ROS, spin ``make_node(lifecycle)`` until a signal (or the
    lifecycle node's shutdown transition), shut down; returns the exit status (2: a start-up error)."""
    argv = list(argv)
    lifecycle = LIFECYCLE_FLAG in argv
    argv = [token for token in argv if token != LIFECYCLE_FLAG]
    prog = 'depth_completion_node'
    shutdown = ShutdownRequest()  # before anything slow: a signal during start-up is a clean stop too
    # A bad parameter file or -p value gets one clear line (rclpy would print several, or ignore a wrong type).
    try:
        param_table.check_command_line(argv)
    except param_table.ConfigError as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return 2
    # Before anything imports torch: libgomp reads the wait policy once, when it loads.
    cpu = param_table.command_line_values(argv, list(CPU_PARAMETERS))
    settings = configure_cpu(**{CPU_PARAMETERS[name]: value for name, value in cpu.items()})
    print(f'[{NODE_NAME}] cpu: ' + ', '.join(f'{k}={v}' for k, v in settings.items()), flush=True)
    try:
        rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:
        print(f'{prog}: error: cannot initialise ROS: {exc}', file=sys.stderr)
        return 2
    node: Any = None
    executor: SingleThreadedExecutor | None = None
    status = 0
    try:
        node = make_node(lifecycle)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not shutdown.requested and not getattr(node, 'finished', False):
            executor.spin_once(timeout_sec=0.1)  # wakes up for the shutdown flag at least every 0.1 s
    except StartupError as exc:
        print(f'{prog}: error: {exc}', file=sys.stderr)
        status = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # the context was shut down from elsewhere: the same clean stop below
    except Exception:
        if rclpy.ok() and not shutdown.requested:
            raise
        # the context became invalid under the executor (shut down from elsewhere): the same clean stop
    finally:
        _shut_down(node, executor, shutdown)
    return status


def _shut_down(node: Any, executor: SingleThreadedExecutor | None, shutdown: ShutdownRequest) -> None:
    """The one shutdown path: stop taking frames, abandon/join the worker, final counters, destroy, shut down."""
    if node is not None:
        finished = node.stop()
        stats = {**node.stats(), 'stopped_by': shutdown.signal_name or 'shutdown'}
        print(f'[{NODE_NAME}] final stats ' + json.dumps(stats, default=_json_safe), flush=True)
        if not finished:
            print(f'[{NODE_NAME}] the worker is still inside one operation; exiting when it returns', flush=True)
        if executor is not None:
            executor.remove_node(node)
            executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
    rclpy.try_shutdown()


def _json_safe(value: Any) -> Any:
    return str(value)
