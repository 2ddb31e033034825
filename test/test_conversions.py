"""Image / PointCloud2 / CameraInfo conversions: round trips, padding, byte order, arbitrary cloud layouts."""
from __future__ import annotations

import array
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from depth_completion_ros.core.camera import CameraModel, CameraModelError
from depth_completion_ros.core.conversions import (
    UnsupportedEncodingError,
    arrays_to_pointcloud2,
    depth_image_to_metres,
    image_to_numpy,
    image_to_rgb,
    metres_to_depth_image,
    numpy_to_image,
    pointcloud2_to_arrays,
)

ENCODINGS = {  # encoding -> (dtype, channels)
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1), '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1),
}


def random_image(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype == np.float32:
        return rng.normal(3.0, 2.0, shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def wire_image(image: np.ndarray, encoding: str, pad_bytes: int = 0, big_endian: bool = False,
               data_type: str = 'array') -> SimpleNamespace:
    """An Image-like message written independently of the code under test: explicit byte order and padding."""
    height, width = image.shape[:2]
    wire = image.astype(image.dtype.newbyteorder('>' if big_endian else '<'))
    rows = wire.reshape(height, -1).view(np.uint8).reshape(height, -1)
    padded = np.full((height, rows.shape[1] + pad_bytes), 0xAB, dtype=np.uint8)  # garbage in the padding
    padded[:, :rows.shape[1]] = rows
    data = padded.tobytes()
    if data_type == 'array':
        data = array.array('B', data)
    elif data_type == 'numpy':
        data = np.frombuffer(data, dtype=np.uint8).copy()
    return SimpleNamespace(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian),
                           step=padded.shape[1], data=data)


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
@pytest.mark.parametrize('pad_bytes', [0, 3, 16])
@pytest.mark.parametrize('big_endian', [False, True])
def test_image_decode_padding_and_byte_order(encoding: str, pad_bytes: int, big_endian: bool) -> None:
    image = random_image(encoding, seed=pad_bytes)
    msg = wire_image(image, encoding, pad_bytes=pad_bytes, big_endian=big_endian)
    decoded = image_to_numpy(msg)
    assert decoded.shape == image.shape
    assert decoded.dtype == image.dtype and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, image)


@pytest.mark.parametrize('data_type', ['array', 'bytes', 'numpy'])
def test_image_decode_is_zero_copy_for_native_data(data_type: str) -> None:
    image = random_image('32FC1')
    msg = wire_image(image, '32FC1', data_type=data_type)
    decoded = image_to_numpy(msg)
    np.testing.assert_array_equal(decoded, image)
    assert np.shares_memory(decoded, np.frombuffer(msg.data, dtype=np.uint8))


@pytest.mark.parametrize('encoding', sorted(ENCODINGS))
def test_image_round_trip_through_rclpy_message(encoding: str) -> None:
    pytest.importorskip('sensor_msgs.msg')
    image = random_image(encoding, height=4, width=9, seed=3)
    msg = numpy_to_image(image, encoding, frame_id='cam', stamp=(12, 34))
    assert isinstance(msg.data, array.array)  # what rclpy serialises fastest
    assert msg.step == image.shape[1] * image.itemsize * (image.shape[2] if image.ndim == 3 else 1)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ('cam', 12, 34)
    assert msg.is_bigendian == (sys.byteorder == 'big')
    np.testing.assert_array_equal(image_to_numpy(msg), image)


def test_image_round_trip_through_rosbags_message() -> None:
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_HUMBLE)
    image_cls = typestore.types['sensor_msgs/msg/Image']
    image = random_image('16UC1', seed=4)
    msg = numpy_to_image(image, '16UC1', msg_cls=image_cls, frame_id='depth')
    cdr = typestore.serialize_cdr(msg, image_cls.__msgtype__)
    decoded = typestore.deserialize_cdr(cdr, image_cls.__msgtype__)
    np.testing.assert_array_equal(image_to_numpy(decoded), image)
    assert decoded.header.frame_id == 'depth'


def test_image_to_rgb_reorders_channels() -> None:
    rgb = random_image('rgb8', seed=5)
    bgra = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    for encoding, wire in [('rgb8', rgb), ('bgr8', rgb[..., ::-1]), ('rgba8', rgba), ('bgra8', bgra)]:
        out = image_to_rgb(wire_image(np.ascontiguousarray(wire), encoding, pad_bytes=2))
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
    mono = random_image('mono8')
    np.testing.assert_array_equal(image_to_rgb(wire_image(mono, 'mono8')), np.stack([mono] * 3, axis=2))


def test_image_unsupported_encoding_is_named() -> None:
    msg = SimpleNamespace(height=1, width=1, encoding='nv21', is_bigendian=0, step=2, data=b'\0\0')
    with pytest.raises(UnsupportedEncodingError, match='nv21'):
        image_to_numpy(msg)
    with pytest.raises(UnsupportedEncodingError, match='bayer_rggb16'):
        numpy_to_image(np.zeros((2, 2), np.uint16), 'bayer_rggb16')
    with pytest.raises(UnsupportedEncodingError, match='16UC1'):
        image_to_rgb(wire_image(random_image('16UC1'), '16UC1'))


def test_image_rejects_short_step_and_short_data() -> None:
    msg = wire_image(random_image('mono16'), 'mono16')
    msg.step = msg.width  # one byte per pixel for a 2-byte encoding
    with pytest.raises(ValueError, match='step'):
        image_to_numpy(msg)
    msg = wire_image(random_image('mono16'), 'mono16')
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match='bytes'):
        image_to_numpy(msg)


def test_depth_16uc1_millimetres_and_zero_invalid() -> None:
    millimetres = np.array([[0, 1, 1500], [65535, 250, 0]], dtype=np.uint16)
    for encoding in ('16UC1', 'mono16'):
        depth = depth_image_to_metres(wire_image(millimetres, encoding, pad_bytes=2, big_endian=True))
        assert depth.dtype == np.float32
        np.testing.assert_allclose(depth, millimetres / 1000.0, rtol=1e-7)
        assert (depth[millimetres == 0] == 0).all()


def test_depth_32fc1_non_finite_becomes_zero() -> None:
    metres = np.array([[1.5, np.nan, np.inf], [-np.inf, 0.0, 42.25]], dtype=np.float32)
    depth = depth_image_to_metres(wire_image(metres, '32FC1'))
    np.testing.assert_array_equal(depth, [[1.5, 0, 0], [0, 0, 42.25]])
    with pytest.raises(UnsupportedEncodingError, match='rgb8'):
        depth_image_to_metres(wire_image(random_image('rgb8'), 'rgb8'))


def test_metres_to_depth_image_conventions() -> None:
    pytest.importorskip('sensor_msgs.msg')
    depth = np.array([[1.2344, 0.0, np.nan], [70.0, -1.0, 3.0]], dtype=np.float32)
    as_float = image_to_numpy(metres_to_depth_image(depth, '32FC1'))
    np.testing.assert_array_equal(np.isnan(as_float), [[False, True, True], [False, True, False]])
    np.testing.assert_array_equal(as_float[~np.isnan(as_float)], np.float32([1.2344, 70.0, 3.0]))
    msg = metres_to_depth_image(depth, '16UC1')
    assert msg.encoding == '16UC1'
    # 1.2344 m -> 1234 mm (rounded), unknown and unrepresentable (> 65.535 m) -> 0
    np.testing.assert_array_equal(image_to_numpy(msg), [[1234, 0, 0], [0, 0, 3000]])
    round_trip = depth_image_to_metres(msg)
    np.testing.assert_allclose(round_trip, [[1.234, 0, 0], [0, 0, 3.0]], rtol=1e-6)


# ------------------------------------------------------------------------------------------------- PointCloud2

def pointfield(name: str, offset: int, datatype: int, count: int = 1) -> SimpleNamespace:
    return SimpleNamespace(name=name, offset=offset, datatype=datatype, count=count)


@pytest.mark.parametrize('big_endian', [False, True])
@pytest.mark.parametrize('organized', [False, True])
def test_pointcloud2_any_layout_decodes(big_endian: bool, organized: bool) -> None:
    """Fields out of order, gaps inside the point, a float64 'ring_time', uint16 intensity, row padding."""
    order = '>' if big_endian else '<'
    height, width = (3, 4) if organized else (1, 12)
    n = height * width
    rng = np.random.default_rng(7)
    xyz = rng.normal(0, 10, (n, 3)).astype(np.float32)
    xyz[2] = [np.nan, 1.0, 2.0]       # non-finite points are dropped
    xyz[5] = [1.0, np.inf, 2.0]
    intensity = rng.integers(0, 4000, n).astype(np.uint16)
    colours = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    packed = ((colours[:, 0].astype(np.uint32) << 16) | (colours[:, 1].astype(np.uint32) << 8)
              | colours[:, 2]).view(np.float32)
    # point_step 40: time(f8)@0, pad, z@12, rgb@16, intensity(u2)@20, pad, x@24, y@28, ring(u1 x2)@32, pad
    point = np.dtype({'names': ['time', 'z', 'rgb', 'intensity', 'x', 'y', 'ring'],
                      'formats': [order + 'f8', order + 'f4', order + 'f4', order + 'u2', order + 'f4',
                                  order + 'f4', ('u1', (2,))],
                      'offsets': [0, 12, 16, 20, 24, 28, 32], 'itemsize': 40})
    row_pad = 24
    rows = np.zeros((height, width * 40 + row_pad), dtype=np.uint8)
    points = np.zeros(n, dtype=point)
    points['time'], points['x'], points['y'], points['z'] = rng.random(n), xyz[:, 0], xyz[:, 1], xyz[:, 2]
    points['rgb'], points['intensity'], points['ring'] = packed, intensity, 3
    rows[:, :width * 40] = points.view(np.uint8).reshape(height, width * 40)
    msg = SimpleNamespace(
        height=height, width=width, is_bigendian=big_endian, point_step=40, row_step=width * 40 + row_pad,
        fields=[pointfield('time', 0, 8), pointfield('z', 12, 7), pointfield('rgb', 16, 7),
                pointfield('intensity', 20, 4), pointfield('x', 24, 7), pointfield('y', 28, 7),
                pointfield('ring', 32, 2, count=2)],
        data=array.array('B', rows.tobytes()), is_dense=False)

    cloud = pointcloud2_to_arrays(msg)
    keep = np.isfinite(xyz).all(axis=1)
    assert cloud.xyz.dtype == np.float32 and cloud.xyz.shape == (n - 2, 3)
    np.testing.assert_array_equal(cloud.xyz, xyz[keep])
    np.testing.assert_array_equal(cloud.intensity, intensity[keep].astype(np.float32))
    np.testing.assert_array_equal(cloud.rgb, colours[keep])


def test_pointcloud2_missing_xyz_is_an_error() -> None:
    msg = SimpleNamespace(height=1, width=1, is_bigendian=False, point_step=8, row_step=8,
                          fields=[pointfield('x', 0, 7), pointfield('y', 4, 7)], data=bytes(8))
    with pytest.raises(ValueError, match='z'):
        pointcloud2_to_arrays(msg)


def test_pointcloud2_round_trip_organized_xyzrgb() -> None:
    pytest.importorskip('sensor_msgs.msg')
    rng = np.random.default_rng(8)
    xyz = rng.normal(0, 5, (4, 6, 3)).astype(np.float32)
    xyz[1, 2] = np.nan
    rgb = rng.integers(0, 256, (4, 6, 3)).astype(np.uint8)
    msg = arrays_to_pointcloud2(xyz, rgb, frame_id='cam')
    assert (msg.height, msg.width, msg.is_dense, msg.point_step, msg.row_step) == (4, 6, False, 16, 96)
    assert [f.name for f in msg.fields] == ['x', 'y', 'z', 'rgb']
    assert isinstance(msg.data, array.array) and len(msg.data) == 4 * 6 * 16
    # organized: row-major H x W with NaN kept in place (ROS.md §3.11 pitfall)
    wire = np.frombuffer(msg.data, dtype=np.float32).reshape(4, 6, 4)
    np.testing.assert_array_equal(wire[..., :3], xyz)
    cloud = pointcloud2_to_arrays(msg)
    valid = np.isfinite(xyz).all(axis=2)
    np.testing.assert_array_equal(cloud.xyz, xyz[valid])
    np.testing.assert_array_equal(cloud.rgb, rgb[valid])
    assert cloud.intensity is None


def test_pointcloud2_round_trip_unorganized_xyz_with_rosbags() -> None:
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_HUMBLE)
    cloud_cls = typestore.types['sensor_msgs/msg/PointCloud2']
    xyz = np.random.default_rng(9).normal(0, 5, (100, 3)).astype(np.float32)
    msg = arrays_to_pointcloud2(xyz, msg_cls=cloud_cls, frame_id='velo')
    decoded = typestore.deserialize_cdr(typestore.serialize_cdr(msg, cloud_cls.__msgtype__), cloud_cls.__msgtype__)
    assert (decoded.height, decoded.width, decoded.point_step) == (1, 100, 12)
    np.testing.assert_array_equal(pointcloud2_to_arrays(decoded).xyz, xyz)


# ------------------------------------------------------------------------------------------------- CameraInfo

def camera_info(width: int = 640, height: int = 480, binning: tuple[int, int] = (0, 0),
                roi: tuple[int, int, int, int] = (0, 0, 0, 0), k: list | None = None,
                p: list | None = None) -> SimpleNamespace:
    k = [500.0, 0, 320.0, 0, 510.0, 240.0, 0, 0, 1] if k is None else k
    p = [500.0, 0, 320.0, -25.0, 0, 510.0, 240.0, 0, 0, 0, 1, 0] if p is None else p
    x0, y0, w, h = roi
    return SimpleNamespace(
        header=SimpleNamespace(frame_id='optical', stamp=SimpleNamespace(sec=1, nanosec=2)),
        width=width, height=height, k=np.array(k, float), p=np.array(p, float), d=[0.1, -0.2, 0, 0, 0],
        distortion_model='plumb_bob', binning_x=binning[0], binning_y=binning[1],
        roi=SimpleNamespace(x_offset=x0, y_offset=y0, width=w, height=h, do_rectify=False))


def test_camera_info_plain() -> None:
    camera = CameraModel.from_camera_info(camera_info())
    assert (camera.width, camera.height, camera.frame_id) == (640, 480, 'optical')
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (500.0, 510.0, 320.0, 240.0)
    assert camera.P[0, 3] == -25.0 and camera.D.tolist() == [0.1, -0.2, 0, 0, 0]


def test_camera_info_binning_and_roi() -> None:
    # ROI in full-resolution pixels, then 2x4 binning (image_geometry semantics)
    camera = CameraModel.from_camera_info(camera_info(binning=(2, 4), roi=(100, 40, 400, 320)))
    assert (camera.width, camera.height) == (200, 80)
    np.testing.assert_allclose([camera.fx, camera.fy, camera.cx, camera.cy],
                               [250.0, 127.5, (320 - 100) / 2, (240 - 40) / 4])
    np.testing.assert_allclose(camera.P[0], [250.0, 0, 110.0, -12.5])
    np.testing.assert_allclose(camera.P[1], [0, 127.5, 50.0, 0])
    # binning 1 == no binning; all-zero ROI == full image
    same = CameraModel.from_camera_info(camera_info(binning=(1, 1)))
    np.testing.assert_array_equal(same.K, CameraModel.from_camera_info(camera_info()).K)


def test_camera_info_all_zero_p_becomes_k() -> None:
    camera = CameraModel.from_camera_info(camera_info(p=[0.0] * 12))
    np.testing.assert_array_equal(camera.P[:, :3], camera.K)
    np.testing.assert_array_equal(camera.P[:, 3], 0)


@pytest.mark.parametrize('kwargs, message', [
    ({'k': [0.0] * 9}, 'uncalibrated'),
    ({'k': [0.0, 0, 320, 0, 510, 240, 0, 0, 1]}, 'focal length'),
    ({'width': 0}, 'size'),
    ({'roi': (600, 0, 100, 100)}, 'ROI'),
    ({'k': [500.0, 0, 320, 0, 510, 240, 0, 0, 2]}, 'K'),
])
def test_bad_camera_info_raises(kwargs: dict, message: str) -> None:
    with pytest.raises(CameraModelError, match=message):
        CameraModel.from_camera_info(camera_info(**kwargs))


def test_camera_info_round_trip_rclpy_and_rosbags() -> None:
    pytest.importorskip('sensor_msgs.msg')
    from rosbags.typesys import Stores, get_typestore

    camera = CameraModel.from_camera_info(camera_info(binning=(2, 2), roi=(0, 0, 640, 480)))
    msg = camera.to_camera_info(stamp=(3, 4))
    assert (msg.width, msg.height, msg.header.frame_id, msg.header.stamp.sec) == (320, 240, 'optical', 3)
    again = CameraModel.from_camera_info(msg)
    np.testing.assert_array_equal(again.K, camera.K)
    np.testing.assert_array_equal(again.P, camera.P)
    np.testing.assert_array_equal(again.D, camera.D)
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    info_cls = typestore.types['sensor_msgs/msg/CameraInfo']
    bag_msg = typestore.deserialize_cdr(typestore.serialize_cdr(camera.to_camera_info(msg_cls=info_cls),
                                                                 info_cls.__msgtype__), info_cls.__msgtype__)
    np.testing.assert_array_equal(CameraModel.from_camera_info(bag_msg).K, camera.K)


def test_camera_scaled_and_cropped() -> None:
    camera = CameraModel.from_intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
    half = camera.scaled(0.5)
    assert (half.width, half.height) == (320, 240)
    # pixel-centre convention: the image centre stays the image centre
    np.testing.assert_allclose([half.fx, half.cx, half.cy], [250.0, 159.5, 119.5])
    crop = camera.cropped(100, 50, 200, 100)
    assert (crop.width, crop.height, crop.cx, crop.cy) == (200, 100, 219.5, 189.5)
    with pytest.raises(CameraModelError, match='outside'):
        camera.cropped(600, 0, 100, 100)
