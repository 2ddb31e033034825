"""The one reader of image files for every loader (colour and 16-bit depth): a file that cannot be decoded
(truncated by an interrupted copy, corrupt, not an image) becomes a :class:`DataError` naming the file and the
fix, which every command prints as one line with exit status 2, instead of PIL's ``OSError: image file is
truncated`` that names no file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from depth_completion_ros.core.errors import DataError


def read_image_array(path: str | Path, mode: str | None = None) -> np.ndarray:
    """The pixels of ``path`` as a numpy array, converted to PIL ``mode`` (e.g. ``'RGB'``) when given.

    A missing file stays :class:`FileNotFoundError` (its message already names the path and it is the fix)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            # decoded here, inside the try: PIL opens lazily and a truncated file fails only when pixels are read
            return np.array(image.convert(mode) if mode else image)
    except FileNotFoundError:
        raise
    except UnidentifiedImageError:
        reason = 'not an image format PIL can read'
    except (OSError, SyntaxError, ValueError) as exc:  # PIL reports broken chunks as SyntaxError/ValueError too
        reason = str(exc) or type(exc).__name__
    raise DataError(f'{path}: cannot read this image ({reason}); copy it again from its source, or move it and '
                    "the frame's other files out of the folder")
