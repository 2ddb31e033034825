"""Depth completion node with a config preset; optionally plays a bag (with /clock, use_sim_time) and opens RViz.

    ros2 launch depth_completion_ros depth_completion.launch.py
    ros2 launch depth_completion_ros depth_completion.launch.py bag:=/path/to/bag config:=kitti_hdl64
    ros2 launch depth_completion_ros depth_completion.launch.py image:=/cam/image_raw points:=/velodyne_points
    ros2 launch depth_completion_ros depth_completion.launch.py rviz:=false     # headless robot
    ros2 launch depth_completion_ros depth_completion.launch.py cameras:=left,right points:=/velodyne_points
    ros2 launch depth_completion_ros depth_completion.launch.py lifecycle:=true  # managed: configure/activate it

`cameras:=a,b` runs one node for several cameras around the one cloud: camera `a` reads `/a/image_raw` and
`/a/camera_info` (`camera_image:=`/`camera_camera_info:=` patterns, `{camera}` = the name) and publishes
`/depth_completion/a/depth`, ... . A bag from `make-bag --cameras N` brings its camera list in its parameter file.

Bags made with `depth-completion make-bag` carry their extrinsics in <bag>/depth_completion_params.yaml; that file
is added automatically when it exists (TF from /tf_static is used too when tf2_ros is installed).

Start-up order: the node needs seconds (torch import, model warm-up) before it listens, so `ros2 bag play`
starts only when the node prints its `ready:` line (an event handler on the node's output); with
`play_delay:=<s>` it starts after that many seconds instead (for a node whose output is not captured).
"""
import os

from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, RegisterEventHandler, TimerAction
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessIO
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from depth_completion_ros.ros.params import load_params_file
from launch import LaunchDescription

PACKAGE = 'depth_completion_ros'


def _nodes(context, *args, **kwargs):
    share = FindPackageShare(PACKAGE).perform(context)
    config = LaunchConfiguration('config').perform(context)
    config_path = config if os.path.isfile(config) else os.path.join(share, 'config', f'{config}.yaml')
    bag = LaunchConfiguration('bag').perform(context)
    use_sim_time = bool(bag) or LaunchConfiguration('use_sim_time').perform(context).lower() == 'true'
    params_files = [config_path]
    bag_params = os.path.join(bag, 'depth_completion_params.yaml') if bag else ''
    if bag_params and os.path.isfile(bag_params):
        params_files.append(bag_params)
    overrides = {'use_sim_time': use_sim_time}
    prefill_only = LaunchConfiguration('prefill_only').perform(context)
    if prefill_only:
        overrides['prefill_only'] = prefill_only.lower() == 'true'
    publish_debug = (LaunchConfiguration('publish_debug').perform(context)
                     or LaunchConfiguration('rviz').perform(context))
    overrides['publish_debug'] = publish_debug.lower() == 'true'  # default: on exactly when RViz shows them
    remappings = [(topic, LaunchConfiguration(argument).perform(context)) for topic, argument in (
        ('image', 'image'), ('camera_info', 'camera_info'), ('points', 'points'), ('depth', 'depth'),
        ('depth/camera_info', 'depth_camera_info'))]
    cameras = [name.strip() for name in LaunchConfiguration('cameras').perform(context).split(',') if name.strip()]
    if not cameras and bag_params in params_files:  # a multi-camera bag names its cameras
        cameras = [str(name) for name in load_params_file(bag_params).get('cameras', [])]
    if cameras:
        overrides['cameras'] = cameras
        image_pattern = LaunchConfiguration('camera_image').perform(context)
        info_pattern = LaunchConfiguration('camera_camera_info').perform(context)
        for name in cameras:
            remappings += [(f'{name}/image', image_pattern.format(camera=name)),
                           (f'{name}/camera_info', info_pattern.format(camera=name))]
    lifecycle = LaunchConfiguration('lifecycle').perform(context).lower() == 'true'
    node = Node(
        package=PACKAGE, executable='depth_completion_node', name='depth_completion', output='screen',
        arguments=['--lifecycle'] if lifecycle else [], parameters=[*params_files, overrides],
        remappings=remappings,
    )
    actions = [node]
    if bag:
        # ros2 bag play --clock publishes /clock; every node (RViz included) runs on sim time.
        play = ExecuteProcess(cmd=['ros2', 'bag', 'play', bag, '--clock', '--rate',
                                   LaunchConfiguration('rate').perform(context)]
                              + (['--loop'] if LaunchConfiguration('loop').perform(context) == 'true' else []),
                              output='screen')
        delay = float(LaunchConfiguration('play_delay').perform(context) or 0.0)
        if delay > 0:
            actions.append(TimerAction(period=delay, actions=[play]))
        else:
            started = []

            def start_when_ready(event):
                # the node logs "ready: ..." once its subscriptions exist ("active:" for the lifecycle node);
                # start the bag once, then
                if (b'ready:' in event.text or b'active:' in event.text) and not started:
                    started.append(True)
                    return [play]
                return None

            actions.append(RegisterEventHandler(OnProcessIO(target_action=node, on_stdout=start_when_ready,
                                                            on_stderr=start_when_ready)))
    actions.append(Node(
        package='rviz2', executable='rviz2', name='rviz2', output='screen',
        arguments=['-d', os.path.join(share, 'rviz', 'depth_completion.rviz'),
                   '--fixed-frame', LaunchConfiguration('fixed_frame').perform(context)],
        parameters=[{'use_sim_time': use_sim_time}],
        condition=IfCondition(LaunchConfiguration('rviz')),
    ))
    return actions


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument('config', default_value='generic',
                              description='preset (kitti_hdl64, rgbd_camera, generic) or a parameter file'),
        DeclareLaunchArgument('bag', default_value='', description='rosbag2 to play with --clock (optional)'),
        DeclareLaunchArgument('rate', default_value='1.0', description='bag playback rate'),
        DeclareLaunchArgument('loop', default_value='false', description='loop the bag'),
        DeclareLaunchArgument('rviz', default_value='true',
                              description='open RViz with the shipped config (rviz:=false on a headless robot)'),
        DeclareLaunchArgument('fixed_frame', default_value='camera_optical_frame',
                              description="RViz fixed frame (e.g. base_link or map when TF connects the camera)"),
        DeclareLaunchArgument('publish_debug', default_value='',
                              description='debug images: sparse, prefill, colourised depth and confidence '
                                          '(default: same as rviz, which shows the colourised ones)'),
        DeclareLaunchArgument('play_delay', default_value='0',
                              description='> 0: start the bag this many seconds after launch instead of when the '
                                          'node says it is ready'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='forced true when bag is set'),
        DeclareLaunchArgument('prefill_only', default_value='', description='true: no network (ip_basic only)'),
        DeclareLaunchArgument('image', default_value='/camera/image_raw'),
        DeclareLaunchArgument('camera_info', default_value='/camera/camera_info'),
        DeclareLaunchArgument('points', default_value='/lidar/points'),
        DeclareLaunchArgument('depth', default_value='/camera/depth/image_raw'),
        DeclareLaunchArgument('depth_camera_info', default_value='/camera/depth/camera_info'),
        DeclareLaunchArgument('cameras', default_value='',
                              description='several cameras around the one cloud, comma-separated (left,right); '
                                          'default: one camera on image/camera_info (or the bag\'s cameras)'),
        DeclareLaunchArgument('camera_image', default_value='/{camera}/image_raw',
                              description='with cameras: each camera\'s image topic, {camera} = its name'),
        DeclareLaunchArgument('camera_camera_info', default_value='/{camera}/camera_info',
                              description='with cameras: each camera\'s camera_info topic, {camera} = its name'),
        DeclareLaunchArgument('lifecycle', default_value='false',
                              description='true: the managed node (unconfigured until configure/activate)'),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])


