"""sensor_msgs Image / PointCloud2 <-> numpy, without cv_bridge or sensor_msgs_py.

Incoming messages are read duck-typed (rclpy messages and ``rosbags``-deserialized ones look alike: the same
field names; ``data`` is an ``array.array`` or a numpy array) and wrapped with ``np.frombuffer`` views, so
nothing is copied unless padding, byte order or a dtype change forces it. Outgoing messages get their bytes
through ``array.array('B').frombytes`` (one memcpy; assigning lists or arrays to ``.data`` is far slower,
ROS.md §3.10-12). Message classes are imported lazily so this module imports without rclpy.
"""
from __future__ import annotations

import array
import dataclasses
import importlib
import re
import sys
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    'UnsupportedEncodingError', 'CloudArrays', 'image_to_numpy', 'numpy_to_image', 'image_to_rgb',
    'depth_image_to_metres', 'metres_to_depth_image', 'pointcloud2_to_arrays', 'arrays_to_pointcloud2',
    'POINTFIELD_DTYPES', 'encoding_layout', 'stamp_to_ns',
]


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) -> integer nanoseconds; pass ``msg.header.stamp``."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class UnsupportedEncodingError(ValueError):
    """An Image encoding this module cannot convert (the message names the encoding)."""


# --------------------------------------------------------------------------------------------------------------
# Building messages of either flavour (rclpy classes or rosbags dataclasses)
# --------------------------------------------------------------------------------------------------------------

def _default_msg_cls(name: str) -> type:
    module = importlib.import_module('sensor_msgs.msg')  # lazy: only when a message is built
    return getattr(module, name)


def _as_byte_buffer(value: Any) -> memoryview:
    if isinstance(value, np.ndarray):
        return memoryview(np.ascontiguousarray(value).reshape(-1).view(np.uint8))
    return memoryview(value).cast('B')


def _rclpy_field_class(msg: Any, field: str) -> type | None:
    """Element/nested class of an rclpy message field from its type string, e.g. 'sequence<sensor_msgs/PointField>'."""
    type_str = type(msg).get_fields_and_field_types()[field]
    match = re.fullmatch(r'(?:sequence<)?([A-Za-z0-9_]+)/([A-Za-z0-9_]+)(?:,\s*\d+)?>?', type_str)
    if match is None:
        return None
    return getattr(importlib.import_module(f'{match.group(1)}.msg'), match.group(2))


def _rosbags_field_class(cls: type, type_str: str) -> type:
    """Nested class of a rosbags dataclass field; its annotation names a class in the same generated module."""
    name = type_str.removeprefix('list[').removesuffix(']')
    return getattr(sys.modules[cls.__module__], name)


def _make_message(cls: type, values: dict[str, Any]) -> Any:
    """Instantiate ``cls`` with ``values``; nested messages are given as dicts, byte blobs under key ``data``.

    rosbags classes are dataclasses that need every field at construction; rclpy classes are built empty and
    filled attribute by attribute (their setters type-check, so uint8 data goes in as ``array.array('B')``).
    """
    if dataclasses.is_dataclass(cls):
        kwargs: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name not in values:
                continue
            value = values[field.name]
            if field.name == 'data':
                value = np.frombuffer(_as_byte_buffer(value), dtype=np.uint8).copy()
            elif isinstance(value, dict):
                value = _make_message(_rosbags_field_class(cls, str(field.type)), value)
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                element_cls = _rosbags_field_class(cls, str(field.type))
                value = [_make_message(element_cls, item) for item in value]
            elif isinstance(value, np.ndarray):
                value = np.ascontiguousarray(value, dtype=np.float64).reshape(-1)
            kwargs[field.name] = value
        return cls(**kwargs)

    msg = cls()
    for name, value in values.items():
        if name == 'data':
            blob = array.array('B')
            blob.frombytes(_as_byte_buffer(value))
            value = blob
        elif isinstance(value, dict):
            value = _make_message(_rclpy_field_class(msg, name) or type(getattr(msg, name)), value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            element_cls = _rclpy_field_class(msg, name)
            value = [_make_message(element_cls, item) for item in value]
        elif isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value, dtype=np.float64).reshape(-1)
            if getattr(msg, name) is not None and not isinstance(getattr(msg, name), np.ndarray):
                value = array.array('d', value.tobytes())  # unbounded sequence<double> (e.g. CameraInfo.d)
        setattr(msg, name, value)
    return msg


def _header_values(header: Any = None, frame_id: str = '', stamp: Any = None) -> dict[str, Any]:
    """Header as a plain dict (works whatever flavour ``header``/``stamp`` are; ``stamp`` may be (sec, nanosec))."""
    if header is not None:
        stamp = header.stamp if stamp is None else stamp
        frame_id = header.frame_id
    if stamp is None:
        sec, nanosec = 0, 0
    elif isinstance(stamp, (tuple, list)):
        sec, nanosec = int(stamp[0]), int(stamp[1])
    elif hasattr(stamp, 'sec'):
        sec, nanosec = int(stamp.sec), int(stamp.nanosec)
    elif hasattr(stamp, 'seconds_nanoseconds'):  # rclpy.time.Time
        sec, nanosec = stamp.seconds_nanoseconds()
    else:
        raise TypeError(f'cannot read a stamp from {type(stamp).__name__}')
    return {'stamp': {'sec': sec, 'nanosec': nanosec}, 'frame_id': str(frame_id)}


def _byte_view(data: Any) -> np.ndarray:
    """The uint8 bytes of a message's ``data`` field, zero-copy for array.array / ndarray / bytes."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain list of ints (slow path, e.g. hand-made messages)
        return np.asarray(data, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------------------

_NAMED_ENCODINGS: dict[str, tuple[str, int]] = {
    'rgb8': ('u1', 3), 'bgr8': ('u1', 3), 'rgba8': ('u1', 4), 'bgra8': ('u1', 4),
    'rgb16': ('u2', 3), 'bgr16': ('u2', 3), 'rgba16': ('u2', 4), 'bgra16': ('u2', 4),
    'mono8': ('u1', 1), 'mono16': ('u2', 1),
    # YUV 4:2:2 (two bytes a pixel) and 8-bit Bayer mosaics: decoded to RGB by core/image_decoding.py
    'yuv422': ('u1', 2), 'uyvy': ('u1', 2), 'yuyv': ('u1', 2), 'yuv422_yuy2': ('u1', 2),
    'bayer_rggb8': ('u1', 1), 'bayer_bggr8': ('u1', 1), 'bayer_gbrg8': ('u1', 1), 'bayer_grbg8': ('u1', 1),
}
_CV_ENCODING = re.compile(r'(8|16|32|64)([USF])C([1-4])')


def encoding_layout(encoding: str) -> tuple[np.dtype, int]:
    """(native dtype, channels) of an Image encoding; OpenCV-style ``16UC1`` etc. also accepted."""
    if encoding in _NAMED_ENCODINGS:
        code, channels = _NAMED_ENCODINGS[encoding]
        return np.dtype(code), channels
    match = _CV_ENCODING.fullmatch(encoding)
    if match:
        bits, kind, channels = match.groups()
        kind_code = {'U': 'u', 'S': 'i', 'F': 'f'}[kind]
        if not (kind == 'F' and bits in ('8', '16')) and not (kind in 'US' and bits == '64'):
            return np.dtype(f'{kind_code}{int(bits) // 8}'), int(channels)
    raise UnsupportedEncodingError(
        f"unsupported image encoding {encoding!r} (supported: {', '.join(_NAMED_ENCODINGS)}, "
        "and 8U/8S/16U/16S/32S/32F/64F C1-4 such as 16UC1 and 32FC1)")


def image_to_numpy(msg: Any) -> np.ndarray:
    """HxW (one channel) or HxWxC array over the message bytes: zero-copy unless the data is big-endian.

    Row padding (``step`` > width * bytes per pixel) is skipped with strides, so the result may be a
    non-contiguous view; it is read-only when the message data is immutable.
    """
    dtype, channels = encoding_layout(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f'Image step {step} is smaller than width*bytes per pixel = {row_bytes} ({msg.encoding})')
    raw = _byte_view(msg.data)
    needed = step * (height - 1) + row_bytes if height else 0
    if raw.size < needed:
        raise ValueError(f'Image data has {raw.size} bytes, expected {step * height} ({height} rows of {step})')
    big_endian = bool(msg.is_bigendian) and dtype.itemsize > 1
    wire_dtype = dtype.newbyteorder('>' if big_endian else '<') if dtype.itemsize > 1 else dtype
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (step, channels * dtype.itemsize, dtype.itemsize) if channels > 1 else (step, dtype.itemsize)
    image = np.ndarray(shape=shape, dtype=wire_dtype, buffer=raw, offset=0, strides=strides)
    if wire_dtype != dtype.newbyteorder('='):
        image = image.astype(dtype.newbyteorder('='))  # foreign byte order: one converting copy
    return image


def numpy_to_image(array_: np.ndarray, encoding: str, header: Any = None, msg_cls: type | None = None,
                   frame_id: str = '', stamp: Any = None) -> Any:
    """Build a sensor_msgs/Image (rclpy by default, or ``msg_cls``, e.g. a rosbags class), native byte order."""
    dtype, channels = encoding_layout(encoding)
    image = np.asarray(array_)
    expected_ndim = 2 if channels == 1 else 3
    if image.ndim == 3 and channels == 1 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != expected_ndim or (channels > 1 and image.shape[2] != channels):
        raise ValueError(f'{encoding} needs an array of shape HxW{"" if channels == 1 else f"x{channels}"}, '
                         f'got {image.shape}')
    if image.dtype != dtype:
        if not np.can_cast(image.dtype, dtype, casting='same_kind'):
            raise ValueError(f'{encoding} needs dtype {dtype}, got {image.dtype}')
        image = image.astype(dtype)
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return _make_message(msg_cls or _default_msg_cls('Image'), {
        'header': _header_values(header, frame_id, stamp),
        'height': height, 'width': width, 'encoding': encoding,
        'is_bigendian': int(sys.byteorder == 'big'),
        'step': width * channels * dtype.itemsize,
        'data': image,
    })


RGB_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')


def image_to_rgb(msg: Any) -> np.ndarray:
    """HxWx3 uint8 RGB from an Image (rgb8 / bgr8 / rgba8 / bgra8 / mono8, zero-copy for unpadded rgb8;
    yuv422 / uyvy / yuyv and bayer_* decoded by OpenCV) or a CompressedImage (JPEG / PNG)."""
    from depth_completion_ros.core import image_decoding  # OpenCV only when a camera needs it

    if image_decoding.is_compressed(msg):
        return image_decoding.decode_compressed_rgb(msg)
    encoding = msg.encoding
    if encoding in image_decoding.RAW_COLOUR_ENCODINGS:
        return image_decoding.raw_to_rgb(image_to_numpy(msg), encoding)
    if encoding not in RGB_ENCODINGS:
        raise UnsupportedEncodingError(f'cannot read {encoding!r} as an RGB image (supported: '
                                       f'{", ".join(RGB_ENCODINGS + image_decoding.RAW_COLOUR_ENCODINGS)}, '
                                       f'and CompressedImage JPEG/PNG)')
    image = image_to_numpy(msg)
    if encoding == 'rgb8':
        return image if image.flags.c_contiguous else np.ascontiguousarray(image)
    if encoding == 'mono8':
        return np.repeat(image[..., None], 3, axis=2)
    if encoding == 'rgba8':
        return np.ascontiguousarray(image[..., :3])
    return np.ascontiguousarray(image[..., 2::-1])  # bgr8 / bgra8: reverse the first three channels


def depth_image_to_metres(msg: Any) -> np.ndarray:
    """HxW float32 metres, 0 = invalid (REP 118: 16UC1/mono16 in mm with 0 invalid; 32FC1 in m, non-finite
    invalid); also an image_transport ``compressedDepth`` CompressedImage."""
    from depth_completion_ros.core import image_decoding

    if image_decoding.is_compressed(msg):
        return image_decoding.decode_compressed_depth(msg)
    encoding = msg.encoding
    if encoding in ('16UC1', 'mono16'):
        return image_to_numpy(msg).astype(np.float32) * np.float32(0.001)
    if encoding == '32FC1':
        depth = np.array(image_to_numpy(msg), dtype=np.float32)
        depth[~np.isfinite(depth)] = 0.0
        return depth
    raise UnsupportedEncodingError(f'unsupported depth encoding {encoding!r} (16UC1, mono16 or 32FC1)')


def metres_to_depth_image(depth: np.ndarray, encoding: str = '32FC1', header: Any = None,
                          msg_cls: type | None = None, frame_id: str = '', stamp: Any = None) -> Any:
    """Depth in metres (<=0 or non-finite = unknown) as a 32FC1 Image (NaN unknown) or 16UC1 in mm (0 unknown).

    16UC1 cannot hold more than 65.535 m; such depths become 0 (unknown) rather than a wrong clipped value.
    """
    depth = np.asarray(depth, dtype=np.float32)
    invalid = ~(np.isfinite(depth) & (depth > 0))
    if encoding == '32FC1':
        out = depth.copy()
        out[invalid] = np.nan
    elif encoding in ('16UC1', 'mono16'):
        with np.errstate(invalid='ignore'):
            millimetres = np.rint(np.where(invalid, 0.0, depth) * 1000.0)
        millimetres[millimetres > np.iinfo(np.uint16).max] = 0
        out = millimetres.astype(np.uint16)
    else:
        raise UnsupportedEncodingError(f'unsupported depth encoding {encoding!r} (32FC1 or 16UC1)')
    return numpy_to_image(out, encoding, header=header, msg_cls=msg_cls, frame_id=frame_id, stamp=stamp)


# --------------------------------------------------------------------------------------------------------------
# PointCloud2
# --------------------------------------------------------------------------------------------------------------

# sensor_msgs/PointField datatype constants -> numpy type code (without byte order)
POINTFIELD_DTYPES: dict[int, str] = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}
_FLOAT32 = 7


class CloudArrays(NamedTuple):
    """Finite points of a cloud: xyz Nx3 float32, intensity N float32 or None, rgb Nx3 uint8 or None."""
    xyz: np.ndarray
    intensity: np.ndarray | None = None
    rgb: np.ndarray | None = None


def _cloud_dtype(msg: Any) -> np.dtype:
    """Structured dtype of one point from the message's fields, offsets and point_step."""
    order = '>' if msg.is_bigendian else '<'
    names, formats, offsets = [], [], []
    for field in msg.fields:
        if not field.name or field.name in names:
            continue  # PCL writes unnamed padding fields ('_'), duplicates cannot be addressed anyway
        if field.datatype not in POINTFIELD_DTYPES:
            raise ValueError(f'PointField {field.name!r} has unknown datatype {field.datatype}')
        base = np.dtype(order + POINTFIELD_DTYPES[field.datatype])
        count = int(field.count) if int(field.count) > 0 else 1
        names.append(field.name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(int(field.offset))
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': int(msg.point_step)})


def cloud_structured_view(msg: Any) -> np.ndarray:
    """Structured array (height x width) over ``msg.data`` honouring point_step and row_step padding."""
    dtype = _cloud_dtype(msg)
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if row_step < width * point_step:
        raise ValueError(f'PointCloud2 row_step {row_step} < width*point_step {width * point_step}')
    raw = _byte_view(msg.data)
    needed = row_step * (height - 1) + width * point_step if height and width else 0
    if raw.size < needed:
        raise ValueError(f'PointCloud2 data has {raw.size} bytes, layout needs {needed}')
    return np.ndarray(shape=(height, width), dtype=dtype, buffer=raw, offset=0, strides=(row_step, point_step))


def _column(points: np.ndarray, name: str) -> np.ndarray:
    column = points[name]
    return column[..., 0] if column.ndim > points.ndim else column


def _unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """PCL packs colour as 0x00RRGGBB in the bits of a float32 (or uint32) 'rgb'/'rgba' field."""
    if packed.dtype.kind == 'f':
        bits = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    else:
        bits = packed.astype(np.uint32)
    rgb = np.empty(bits.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = (bits >> 16) & 0xFF
    rgb[..., 1] = (bits >> 8) & 0xFF
    rgb[..., 2] = bits & 0xFF
    return rgb


def pointcloud2_to_arrays(msg: Any) -> CloudArrays:
    """xyz (float32 Nx3), intensity and rgb of every point with finite x, y, z, for any field layout."""
    points = cloud_structured_view(msg).reshape(-1)
    names = points.dtype.names or ()
    missing = [axis for axis in 'xyz' if axis not in names]
    if missing:
        raise ValueError(f'PointCloud2 has no field(s) {missing}; fields are {list(names)}')
    xyz = np.empty((points.shape[0], 3), dtype=np.float32)
    for i, axis in enumerate('xyz'):
        xyz[:, i] = _column(points, axis)  # strided read + cast (and byte swap) into a contiguous array
    keep = np.isfinite(xyz).all(axis=1)
    all_finite = bool(keep.all())
    if not all_finite:
        xyz = xyz[keep]

    def select(values: np.ndarray) -> np.ndarray:
        return values if all_finite else values[keep]

    intensity = None
    for name in ('intensity', 'i'):
        if name in names:
            intensity = select(_column(points, name).astype(np.float32))
            break
    rgb = None
    for name in ('rgb', 'rgba'):
        if name in names:
            rgb = _unpack_rgb(select(_column(points, name)))
            break
    if rgb is None and all(c in names for c in 'rgb'):
        rgb = select(np.stack([_column(points, c) for c in 'rgb'], axis=-1).astype(np.uint8))
    return CloudArrays(xyz=xyz, intensity=intensity, rgb=rgb)


def _pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 ...x3 -> float32 with PCL's 0x00RRGGBB bit pattern."""
    rgb = rgb.astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return packed.astype(np.uint32).view(np.float32)


def arrays_to_pointcloud2(xyz: np.ndarray, rgb: np.ndarray | None = None, header: Any = None,
                          msg_cls: type | None = None, frame_id: str = '', stamp: Any = None) -> Any:
    """PointCloud2 with float32 x, y, z (+ PCL packed float 'rgb'); organized HxW for HxWx3 input.

    Invalid points stay in place as NaN (organized clouds keep their pixel grid), so ``is_dense`` is False.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim not in (2, 3) or xyz.shape[-1] != 3:
        raise ValueError(f'xyz must be Nx3 or HxWx3, got {xyz.shape}')
    height, width = (xyz.shape[0], xyz.shape[1]) if xyz.ndim == 3 else (1, xyz.shape[0])
    columns = 3 if rgb is None else 4
    points = np.empty((height, width, columns), dtype=np.float32)
    points[..., :3] = xyz.reshape(height, width, 3)
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != xyz.shape:
            raise ValueError(f'rgb shape {rgb.shape} must match xyz shape {xyz.shape}')
        points[..., 3] = _pack_rgb(rgb.reshape(height, width, 3))
    fields = [{'name': name, 'offset': 4 * i, 'datatype': _FLOAT32, 'count': 1}
              for i, name in enumerate(('x', 'y', 'z', 'rgb')[:columns])]
    point_step = 4 * columns
    return _make_message(msg_cls or _default_msg_cls('PointCloud2'), {
        'header': _header_values(header, frame_id, stamp),
        'height': height, 'width': width, 'fields': fields,
        'is_bigendian': sys.byteorder == 'big',
        'point_step': point_step, 'row_step': point_step * width,
        'data': points, 'is_dense': False,
    })
