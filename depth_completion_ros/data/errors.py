"""The one exception every data loader raises for a user mistake (missing folder, wrong kind, missing
intrinsics, bad spec). A ``ValueError`` so existing ``except ValueError`` paths keep working; the message is
one line that names the fix, so a CLI can print it as is."""
from __future__ import annotations


class DataError(ValueError):
    """Bad ``--data`` spec or a folder that does not hold what its kind needs; the message names the fix."""
