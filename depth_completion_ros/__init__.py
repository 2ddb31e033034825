"""depth_completion_ros: camera + LiDAR/ToF depth completion (LRRU) for ROS 2.

Layout: ``core`` (ROS-free geometry, conversions, prefill, metrics), ``model`` (LRRU in PyTorch),
``data`` (synthetic scenes and loaders), ``training`` (train/eval loops), ``ros`` (the node and its
ROS plumbing), ``tools`` (the ``depth-completion`` CLI subcommands).
"""

__version__ = '0.1.0'
