"""Camera encodings robots really publish, decoded to RGB / metres (core/image_decoding.py via conversions), on
real frames: KITTI colour and NYU Kinect depth. Encoders here are written independently (numpy formulas,
OpenCV's encoders for JPEG/PNG) so each decode is checked against the original pixels."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from depth_completion_ros.core.conversions import (
    UnsupportedEncodingError,
    depth_image_to_metres,
    image_to_rgb,
    numpy_to_image,
)
from depth_completion_ros.core.image_decoding import DecodeError
from depth_completion_ros.ros import bagio


@pytest.fixture(scope='module')
def kitti_rgb(kitti_object_dir: Path) -> np.ndarray:
    return np.asarray(PILImage.open(kitti_object_dir / 'image_2' / '000003.png').convert('RGB'))


@pytest.fixture(scope='module')
def kinect_depth_mm(nyu_dir: Path) -> np.ndarray:
    return np.asarray(PILImage.open(nyu_dir / 'depth' / '1.pgm')).astype(np.uint16)


def compressed_message(data: bytes, fmt: str) -> object:
    cls = bagio.bag_class('sensor_msgs/msg/CompressedImage')
    header = bagio.bag_class('std_msgs/msg/Header')(stamp=bagio.bag_class('builtin_interfaces/msg/Time')(
        sec=1, nanosec=0), frame_id='cam')
    return cls(header=header, format=fmt, data=np.frombuffer(data, np.uint8).copy())


def uyvy_from_rgb(rgb: np.ndarray, order: str = 'uyvy') -> np.ndarray:
    """BT.601 limited-range YUV 4:2:2 (chroma averaged over each pixel pair), HxWx2 bytes."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u_pair = (u[:, 0::2] + u[:, 1::2]) / 2
    v_pair = (v[:, 0::2] + v[:, 1::2]) / 2
    out = np.empty(rgb.shape[:2] + (2,), np.uint8)
    chroma = np.empty(rgb.shape[:2], np.float64)
    chroma[:, 0::2], chroma[:, 1::2] = u_pair, v_pair
    luma_index, chroma_index = (1, 0) if order == 'uyvy' else (0, 1)
    out[..., luma_index] = np.clip(np.rint(y), 0, 255)
    out[..., chroma_index] = np.clip(np.rint(chroma), 0, 255)
    return out


def bayer_from_rgb(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The mosaic a sensor with this colour filter pattern (top-left 2x2, row-major) records."""
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    channel = {'r': 0, 'g': 1, 'b': 2}
    for index, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[pattern[index]]]
    return mosaic


def test_jpeg_and_png_compressed_images_decode_to_the_real_frame(kitti_rgb: np.ndarray) -> None:
    bgr = cv2.cvtColor(kitti_rgb, cv2.COLOR_RGB2BGR)
    png = compressed_message(cv2.imencode('.png', bgr)[1].tobytes(), 'rgb8; png compressed bgr8')
    np.testing.assert_array_equal(image_to_rgb(png), kitti_rgb)  # lossless, channel order right
    jpeg = compressed_message(cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(),
                              'rgb8; jpeg compressed bgr8')
    decoded = image_to_rgb(jpeg)
    assert decoded.shape == kitti_rgb.shape and decoded.dtype == np.uint8
    error = np.abs(decoded.astype(int) - kitti_rgb.astype(int))
    assert error.mean() < 6.0  # 4:2:0 chroma of a textured street scene
    np.testing.assert_array_equal(decoded, cv2.cvtColor(cv2.imdecode(np.frombuffer(
        bytes(jpeg.data), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))  # the library's decode, as RGB
    swapped = np.abs(decoded[..., ::-1].astype(int) - kitti_rgb.astype(int)).mean()
    assert swapped > 2 * error.mean()  # RGB, not BGR
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    mono = image_to_rgb(compressed_message(cv2.imencode('.png', gray)[1].tobytes(), 'mono8; png compressed'))
    assert mono.shape == kitti_rgb.shape and (mono[..., 0] == gray).all() and (mono[..., 2] == gray).all()
    with pytest.raises(DecodeError):
        image_to_rgb(compressed_message(b'not an image at all', 'jpeg'))


@pytest.mark.parametrize('encoding,order', [('yuv422', 'uyvy'), ('uyvy', 'uyvy'), ('yuyv', 'yuyv'),
                                            ('yuv422_yuy2', 'yuyv')])
def test_yuv422_images_decode_to_the_real_frame(kitti_rgb: np.ndarray, encoding: str, order: str) -> None:
    rgb = kitti_rgb[:, :1240]  # an even width, as 4:2:2 needs
    msg = numpy_to_image(uyvy_from_rgb(rgb, order), encoding, frame_id='cam')
    assert msg.step == rgb.shape[1] * 2
    decoded = image_to_rgb(msg)
    assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
    # chroma is shared by pixel pairs and rounded twice: a few grey levels on average
    assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 4.0
    wrong_order = image_to_rgb(numpy_to_image(uyvy_from_rgb(rgb, 'yuyv' if order == 'uyvy' else 'uyvy'),
                                              encoding, frame_id='cam'))
    assert np.abs(wrong_order.astype(int) - rgb.astype(int)).mean() > 20.0


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
def test_bayer_images_decode_to_the_real_frame(kitti_rgb: np.ndarray, pattern: str) -> None:
    rgb = kitti_rgb[:374, :1242]
    msg = numpy_to_image(bayer_from_rgb(rgb, pattern), f'bayer_{pattern}8', frame_id='cam')
    decoded = image_to_rgb(msg)
    assert decoded.shape == rgb.shape
    error = np.abs(decoded.astype(int) - rgb.astype(int)).mean()
    assert error < 6.0, error  # bilinear demosaicing of a real street scene
    other = {'rggb': 'bggr', 'bggr': 'rggb', 'gbrg': 'grbg', 'grbg': 'gbrg'}[pattern]  # red and blue swapped
    misread = image_to_rgb(numpy_to_image(bayer_from_rgb(rgb, pattern), f'bayer_{other}8', frame_id='cam'))
    assert np.abs(misread.astype(int) - rgb.astype(int)).mean() > 2 * error


def test_compressed_depth_16uc1_and_32fc1_decode_to_the_real_kinect_depth(kinect_depth_mm: np.ndarray) -> None:
    png = cv2.imencode('.png', kinect_depth_mm)[1].tobytes()
    msg = compressed_message(struct.pack('<iff', 0, 0.0, 0.0) + png, '16UC1; compressedDepth png')
    metres = depth_image_to_metres(msg)
    np.testing.assert_array_equal(metres, kinect_depth_mm.astype(np.float32) * np.float32(0.001))
    # 32FC1: image_transport quantises inverse depth, value = a / depth + b (defaults: quantization 100, max 10 m)
    quantization, depth_max = 100.0, 10.0
    quant_a = quantization * (quantization + 1.0)
    quant_b = 1.0 - quant_a / depth_max
    depth = kinect_depth_mm.astype(np.float64) / 1000.0
    with np.errstate(divide='ignore'):
        values = np.where(depth > 0, np.rint(quant_a / depth + quant_b), 0).astype(np.uint16)
    msg = compressed_message(struct.pack('<iff', 0, quant_a, quant_b) + cv2.imencode('.png', values)[1].tobytes(),
                             '32FC1; compressedDepth png')
    decoded = depth_image_to_metres(msg)
    valid = depth > 0
    assert np.array_equal(decoded > 0, valid)
    relative = np.abs(decoded[valid] - depth[valid]) / depth[valid]
    assert relative.max() < depth.max() / quant_a  # one quantisation step of inverse depth
    with pytest.raises(DecodeError):
        depth_image_to_metres(compressed_message(b'\x00' * 40, '16UC1; compressedDepth png'))


def test_unknown_encodings_still_name_what_is_supported() -> None:
    msg = numpy_to_image(np.zeros((4, 4), np.uint8), 'mono8')
    msg.encoding = 'nv12'
    with pytest.raises(UnsupportedEncodingError, match='bayer_rggb8'):
        image_to_rgb(msg)
