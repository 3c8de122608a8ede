"""Lossless PNG encoding of frames, fast: the writer every output frame and cached keyframe goes through.

At the fast levels (SEMFI_PNG_LEVEL 1-3, default 1) the PNG is assembled here: every row filtered by 'up'
(video rows are alike, and one vectorised subtraction replaces libpng's trial of five filters per row), the
rows deflated by ISA-L (`isal`), whose level 1 made 720p frames 4-5x faster than zlib's level 1 through
libpng, at the same size (bench/whole_run.py, the test of this module). Level 0 stores the rows
uncompressed (fastest, about 2x larger); levels 4-9 ask for the smallest files and go through libpng
(OpenCV) with its adaptive filters and zlib. Every level is lossless; 8 or 16 bits, RGB or RGBA."""

from __future__ import annotations

import os
import struct
import zlib

import cv2
import numpy as np

from semfi_batch.errors import MediaError

try:  # a pinned dependency; without it (another platform) the same PNGs are deflated by zlib, slower
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - isal is installed by `make install`
    _deflate = zlib

PNG_LEVEL_ENV = "SEMFI_PNG_LEVEL"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_NONE, _FILTER_UP = 0, 2


def png_level() -> int:
    """Compression level of the PNGs we write: SEMFI_PNG_LEVEL (0-9), default 1."""
    value = os.environ.get(PNG_LEVEL_ENV, "1")
    if not value.isdigit() or int(value) > 9:
        raise MediaError(f"{PNG_LEVEL_ENV} must be a compression level 0-9, got {value!r}")
    return int(value)


def encode_png(frame: np.ndarray) -> bytes:
    """A frame (RGB/RGBA, uint8/uint16) as lossless PNG bytes at its own depth and channels."""
    if frame.dtype not in (np.uint8, np.uint16) or frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise MediaError(f"cannot write a frame of shape {frame.shape} {frame.dtype} as PNG")
    level = png_level()
    if level >= 4:
        return _encode_libpng(frame, level)
    height, width, channels = frame.shape
    samples = frame.astype(">u2", copy=False) if frame.dtype == np.uint16 else frame  # PNG: big-endian
    rows = np.ascontiguousarray(samples).view(np.uint8).reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    if level == 0:
        filtered[:, 0] = _FILTER_NONE
        filtered[:, 1:] = rows
        data = zlib.compress(filtered, 0)
    else:
        filtered[:, 0] = _FILTER_UP  # each byte minus the byte above it (the first row: minus zero)
        filtered[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
        data = _deflate.compress(filtered, level)
    depth = 16 if frame.dtype == np.uint16 else 8
    header = struct.pack(">IIBBBBB", width, height, depth, 2 if channels == 3 else 6, 0, 0, 0)
    return b"".join((_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", data), _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _encode_libpng(frame: np.ndarray, level: int) -> bytes:
    code = cv2.COLOR_RGB2BGR if frame.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, code), [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise MediaError("cannot encode PNG")
    return buf.tobytes()
