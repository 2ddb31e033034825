"""Camera images as drivers and bags really carry them -> HxWx3 uint8 RGB / depth in metres (OpenCV, no loops).

- ``sensor_msgs/CompressedImage`` (image_transport ``compressed``): JPEG or PNG, colour or mono, 8 or 16 bit;
- ``sensor_msgs/CompressedImage`` (image_transport ``compressedDepth``): a 12-byte header, then a PNG of the
  16UC1 millimetres, or of the quantised inverse depth for 32FC1 (``depth = a / (value - b)``);
- raw ``sensor_msgs/Image`` encodings besides rgb/bgr/mono: ``yuv422`` (= UYVY, sensor_msgs'
  image_encodings), ``uyvy``, ``yuyv`` / ``yuv422_yuy2`` (YUYV) and ``bayer_rggb8/bggr8/gbrg8/grbg8``.

Messages are read duck-typed (rclpy or rosbags); OpenCV is imported here only. The inverse direction
(:func:`encode_rgb`) writes such images into the bags ``make-bag --image-encoding`` makes.
"""
from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

__all__ = ['RAW_COLOUR_ENCODINGS', 'is_compressed', 'decode_compressed_rgb', 'decode_compressed_depth',
           'raw_to_rgb', 'encode_rgb', 'DecodeError', 'COMPRESSED_FORMATS']

# encoding -> (bytes per pixel, OpenCV conversion to RGB)
_YUV422 = {'yuv422': cv2.COLOR_YUV2RGB_UYVY, 'uyvy': cv2.COLOR_YUV2RGB_UYVY,
           'yuyv': cv2.COLOR_YUV2RGB_YUYV, 'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUYV}
_BAYER = {'bayer_rggb8': cv2.COLOR_BayerRGGB2RGB, 'bayer_bggr8': cv2.COLOR_BayerBGGR2RGB,
          'bayer_gbrg8': cv2.COLOR_BayerGBRG2RGB, 'bayer_grbg8': cv2.COLOR_BayerGRBG2RGB}
RAW_COLOUR_ENCODINGS: tuple[str, ...] = (*_YUV422, *_BAYER)
_TO_YUV422 = {'yuv422': cv2.COLOR_RGB2YUV_UYVY, 'uyvy': cv2.COLOR_RGB2YUV_UYVY,
              'yuyv': cv2.COLOR_RGB2YUV_YUYV, 'yuv422_yuy2': cv2.COLOR_RGB2YUV_YUYV}
_BAYER_LAYOUT = {'bayer_rggb8': 'rggb', 'bayer_bggr8': 'bggr', 'bayer_gbrg8': 'gbrg', 'bayer_grbg8': 'grbg'}
COMPRESSED_FORMATS = ('jpeg', 'png')
COMPRESSED_DEPTH_HEADER_BYTES = 12  # image_transport ConfigHeader: int32 format + float32 depthQuantA, B


class DecodeError(ValueError):
    """The bytes do not decode to an image (corrupt or unsupported compressed data)."""


def is_compressed(msg: Any) -> bool:
    """sensor_msgs/CompressedImage (it has ``format``, no ``encoding``)."""
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def _bytes(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def decode_compressed_rgb(msg: Any) -> np.ndarray:
    """HxWx3 uint8 RGB of a JPEG/PNG CompressedImage (mono and 16-bit images are converted)."""
    image = cv2.imdecode(_bytes(msg.data), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DecodeError(f'CompressedImage (format {msg.format!r}, {len(msg.data)} bytes) does not decode '
                          f'as JPEG/PNG')
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # imdecode returns OpenCV's BGR order


def decode_compressed_depth(msg: Any) -> np.ndarray:
    """HxW float32 metres, 0 = invalid, from an image_transport ``compressedDepth`` message (PNG)."""
    raw = _bytes(msg.data)
    fmt = str(msg.format)
    if raw.size <= COMPRESSED_DEPTH_HEADER_BYTES or 'compressedDepth' not in fmt:
        raise DecodeError(f'not a compressedDepth message (format {fmt!r}, {raw.size} bytes)')
    _format, quant_a, quant_b = struct.unpack('<iff', raw[:COMPRESSED_DEPTH_HEADER_BYTES].tobytes())
    image = cv2.imdecode(raw[COMPRESSED_DEPTH_HEADER_BYTES:], cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16 or image.ndim != 2:
        raise DecodeError(f'compressedDepth payload (format {fmt!r}) is not a 16-bit PNG')
    if fmt.split(';')[0].strip() == '32FC1':
        # quantised inverse depth; 0 = invalid
        values = image.astype(np.float32)
        with np.errstate(divide='ignore'):
            depth = np.float32(quant_a) / (values - np.float32(quant_b))
        depth[(image == 0) | ~np.isfinite(depth) | (depth <= 0)] = 0.0
        return depth.astype(np.float32)
    return image.astype(np.float32) * np.float32(0.001)  # 16UC1 millimetres


def raw_to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """HxWx3 uint8 RGB of a YUV 4:2:2 (HxWx2 bytes) or Bayer (HxW) image array."""
    image = np.ascontiguousarray(image)
    if encoding in _YUV422:
        return cv2.cvtColor(image, _YUV422[encoding])
    if encoding in _BAYER:
        return cv2.cvtColor(image, _BAYER[encoding])
    raise ValueError(f'{encoding!r} is not a YUV 4:2:2 or Bayer encoding')


def encode_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """The bytes a camera publishing ``encoding`` would send for this RGB image: HxWx2 for YUV 4:2:2, the HxW
    mosaic for Bayer (each pixel keeps the channel of its colour filter), the encoded file for jpeg/png."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if encoding in _TO_YUV422:
        if rgb.shape[1] % 2:
            raise ValueError(f'{encoding} needs an even image width, got {rgb.shape[1]}')
        return cv2.cvtColor(rgb, _TO_YUV422[encoding])
    if encoding in _BAYER_LAYOUT:
        channel = {'r': 0, 'g': 1, 'b': 2}
        mosaic = np.empty(rgb.shape[:2], np.uint8)
        for index, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[_BAYER_LAYOUT[encoding][index]]]
        return mosaic
    if encoding in COMPRESSED_FORMATS:
        ok, data = cv2.imencode('.jpg' if encoding == 'jpeg' else '.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 90] if encoding == 'jpeg' else [])
        if not ok:
            raise ValueError(f'OpenCV could not encode the image as {encoding}')
        return data.reshape(-1)
    raise ValueError(f'cannot encode RGB as {encoding!r} (yuv422, uyvy, yuyv, yuv422_yuy2, bayer_*8, jpeg, png)')
