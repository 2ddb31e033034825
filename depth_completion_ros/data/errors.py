"""The data loaders' user-mistake exception: :class:`core.errors.DataError` (defined in the core, whose file
readers raise it too), re-exported here where the loaders and their callers have always imported it."""
from __future__ import annotations

from depth_completion_ros.core.errors import DataError

__all__ = ['DataError']
