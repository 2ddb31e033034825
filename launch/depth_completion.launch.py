"""Depth completion node with a config preset; optionally plays a bag (with /clock, use_sim_time) and opens RViz.

    ros2 launch depth_completion_ros depth_completion.launch.py
    ros2 launch depth_completion_ros depth_completion.launch.py bag:=/path/to/bag config:=kitti_hdl64
    ros2 launch depth_completion_ros depth_completion.launch.py image:=/cam/image_raw points:=/velodyne_points

Bags made with `depth-completion make-bag` carry their extrinsics in <bag>/depth_completion_params.yaml; that file
is added automatically when it exists (TF from /tf_static is used too when tf2_ros is installed).
"""
import os

from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

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
    actions = [Node(
        package=PACKAGE, executable='depth_completion_node', name='depth_completion', output='screen',
        parameters=[*params_files, overrides],
        remappings=[(topic, LaunchConfiguration(argument).perform(context)) for topic, argument in (
            ('image', 'image'), ('camera_info', 'camera_info'), ('points', 'points'), ('depth', 'depth'),
            ('depth/camera_info', 'depth_camera_info'))],
    )]
    if bag:
        # ros2 bag play --clock publishes /clock; every node (RViz included) runs on sim time.
        actions.append(ExecuteProcess(cmd=['ros2', 'bag', 'play', bag, '--clock', '--rate',
                                           LaunchConfiguration('rate').perform(context)]
                                      + (['--loop'] if LaunchConfiguration('loop').perform(context) == 'true' else []),
                                      output='screen'))
    actions.append(Node(
        package='rviz2', executable='rviz2', name='rviz2', output='screen',
        arguments=['-d', os.path.join(share, 'rviz', 'depth_completion.rviz')],
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
        DeclareLaunchArgument('rviz', default_value='true', description='open RViz with the shipped config'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='forced true when bag is set'),
        DeclareLaunchArgument('prefill_only', default_value='', description='true: no network (ip_basic only)'),
        DeclareLaunchArgument('image', default_value='/camera/image_raw'),
        DeclareLaunchArgument('camera_info', default_value='/camera/camera_info'),
        DeclareLaunchArgument('points', default_value='/lidar/points'),
        DeclareLaunchArgument('depth', default_value='/camera/depth/image_raw'),
        DeclareLaunchArgument('depth_camera_info', default_value='/camera/depth/camera_info'),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])


