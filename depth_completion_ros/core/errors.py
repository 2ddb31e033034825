"""The one exception every data reader raises for a user mistake (missing folder, wrong kind, missing
intrinsics, bad spec, an unreadable image). A ``ValueError`` so existing ``except ValueError`` paths keep
working; the message is one line that names the fix, so a CLI can print it as is. It lives in ``core`` because
the core's own file readers (``core.image_files``, ``core.kitti``) raise it too; ``data.errors`` re-exports it."""
from __future__ import annotations


class DataError(ValueError):
    """Bad ``--data`` spec, a folder that does not hold what its kind needs, or an unreadable file; the message
    names the fix."""
