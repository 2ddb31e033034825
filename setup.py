"""ament_python package depth_completion_ros: camera + LiDAR/ToF depth completion with LRRU."""
from glob import glob

from setuptools import find_packages, setup

package_name = 'depth_completion_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={package_name: ['weights/*.safetensors', 'weights/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'LICENSE']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/rviz', glob('rviz/*.rviz')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='depth_completion_ros developers',
    maintainer_email='depth-completion-ros@example.invalid',
    description='Camera + LiDAR/ToF depth completion (LRRU) as a ROS 2 node, with training and evaluation tools',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'depth-completion = depth_completion_ros.cli:main',
            'depth_completion_node = depth_completion_ros.ros.node:main',
            'depth_completion_lifecycle_node = depth_completion_ros.ros.lifecycle:main',
        ],
    },
)
