"""Where every bench target finds the real frames: ``$DEPTH_COMPLETION_SHARED_DATA``, else ``../shared/data``
beside the checkout (the workspace layout of README "Data")."""
from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA_ENV = 'DEPTH_COMPLETION_SHARED_DATA'
_CHECKOUT = Path(__file__).resolve().parents[3]


def shared_data_dir() -> Path:
    return Path(os.environ.get(SHARED_DATA_ENV, _CHECKOUT.parent / 'shared' / 'data'))
