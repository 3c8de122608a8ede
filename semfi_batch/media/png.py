"""Lossless PNG frames, fast: the writer every output frame and cached keyframe goes through, and the reader
every keyframe image goes through first.

At the fast levels (SEMFI_PNG_LEVEL 1-3, default 1) the PNG is assembled here: every row filtered by 'up'
(video rows are alike, and one vectorised subtraction replaces libpng's trial of five filters per row), the
rows deflated by ISA-L (`isal`), whose level 1 made 720p frames 4-5x faster than zlib's level 1 through
libpng, at the same size (bench/whole_run.py, the test of this module). Level 0 stores the rows
uncompressed (fastest, about 2x larger); levels 4-9 ask for the smallest files and go through libpng
(OpenCV) with its adaptive filters and zlib. Every level is lossless; 8 or 16 bits, RGB or RGBA.

`decode_png` reads the PNGs whose rows use only the filters none, sub and up: ours, the keyframe cache's, and
what ffmpeg writes (none). It inflates with libdeflate (`deflate`: into a buffer of the header's size; about
10 % faster than ISA-L's streaming inflate at 720p) and undoes 'up' with one vectorised addition per row,
about 3x faster than libpng at 720p. Any other PNG (average or Paeth rows, palette, gray, interlace, transparency
or other chunks, a damaged chunk) is left to the caller's general decoder (`read_image`: OpenCV)."""

from __future__ import annotations

import os
import struct
import zlib
from typing import TYPE_CHECKING

import cv2
import numpy as np

from semfi_batch.errors import MediaError

if TYPE_CHECKING:
    from semfi_batch.media.colour_profile import ColourProfile

try:  # a pinned dependency; without it (another platform) the same PNGs are deflated by zlib, slower
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - isal is installed by `make install`
    _deflate = zlib
try:  # likewise: without it the image data is inflated by _deflate
    from deflate import zlib_decompress as _inflate_exact
except ImportError:  # pragma: no cover - deflate is installed by `make install`
    _inflate_exact = None

PNG_LEVEL_ENV = "SEMFI_PNG_LEVEL"
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_NONE, _FILTER_SUB, _FILTER_UP = 0, 1, 2
_IHDR_END = 8 + 12 + 13  # the signature, then IHDR: length, type, 13 bytes of data, CRC
_MAX_SIDE = 1_000_000  # libpng's own limit on width and height: OpenCV refuses wider or taller PNGs
PNG_CHANNELS = {2: 3, 6: 4}  # PNG colour type -> channels: RGB, RGBA (the layouts decode_png takes)
# Chunks decode_png passes over: text, time, pixel size and colour descriptions, which OpenCV does not apply
# either (the test compares both readers on files carrying them). Any other chunk sends the file to OpenCV.
_INERT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"pHYs", b"gAMA", b"cHRM", b"sRGB", b"iCCP"}


def png_level() -> int:
    """Compression level of the PNGs we write: SEMFI_PNG_LEVEL (0-9), default 1."""
    value = os.environ.get(PNG_LEVEL_ENV, "1")
    if not value.isdigit() or int(value) > 9:
        raise MediaError(f"{PNG_LEVEL_ENV} must be a compression level 0-9, got {value!r}")
    return int(value)


def encode_png(frame: np.ndarray, colour: ColourProfile | None = None) -> bytes:
    """A frame (RGB/RGBA, uint8/uint16) as lossless PNG bytes at its own depth and channels; with `colour`, the
    colour description the frame's colours are in (an iCCP chunk, else sRGB, gAMA and cHRM chunks)."""
    return b"".join(encode_png_parts(frame, colour))


def encode_png_parts(frame: np.ndarray, colour: ColourProfile | None = None) -> list[bytes]:
    """`encode_png(frame, colour)` in the pieces that make up the file, in order: written one after the other (and
    hashed so), the image data is never copied into one buffer."""
    if frame.dtype not in (np.uint8, np.uint16) or frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise MediaError(f"cannot write a frame of shape {frame.shape} {frame.dtype} as PNG")
    profile = _colour_chunks(colour)
    level = png_level()
    if level >= 4:
        data = _encode_libpng(frame, level)
        return [data[:_IHDR_END], profile, data[_IHDR_END:]]  # the profile goes before the image data
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
    head = b"".join((_SIGNATURE, _chunk(b"IHDR", header), profile, struct.pack(">I", len(data)), b"IDAT"))
    tail = struct.pack(">I", _deflate.crc32(data, _deflate.crc32(b"IDAT"))) + _chunk(b"IEND", b"")
    return [head, data, tail]


def _colour_chunks(colour: ColourProfile | None) -> bytes:
    """The chunks that say how the pixels are shown: iCCP where there is an ICC profile (which overrides the
    others), else sRGB, gAMA and cHRM as the key had them."""
    if colour is None:
        return b""
    if colour.icc:
        return _chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(colour.icc))
    chunks = []
    if colour.srgb is not None:
        chunks.append(_chunk(b"sRGB", bytes([colour.srgb])))
    if colour.gamma is not None:
        chunks.append(_chunk(b"gAMA", struct.pack(">I", colour.gamma)))
    if colour.chromaticity is not None:
        chunks.append(_chunk(b"cHRM", struct.pack(">8I", *colour.chromaticity)))
    return b"".join(chunks)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", _deflate.crc32(data, _deflate.crc32(kind)))


def decode_png(data: bytes, max_pixels: int) -> np.ndarray | None:
    """The pixels of a PNG file's bytes as RGB/RGBA uint8/uint16 (what `read_image` gives), or None when this
    reader does not take the file (see the module's docstring) or it has more than `max_pixels`: the caller
    then decodes it in general. Every chunk's CRC and the image data's Adler-32 are checked, and no more
    is inflated than the header's size holds; nothing here raises for a damaged file."""
    view = memoryview(data)
    if view[:8] != _SIGNATURE:
        return None
    header, idat, pos, ended, previous = None, [], 8, False, b""
    while pos + 12 <= len(view):
        (length,) = struct.unpack_from(">I", view, pos)
        kind = bytes(view[pos + 4 : pos + 8])
        body = view[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(view):
            return None
        (crc,) = struct.unpack_from(">I", view, pos + 8 + length)
        if _deflate.crc32(body, _deflate.crc32(kind)) != crc:
            return None
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body) if length == 13 and header is None else None
        elif kind == b"IDAT":
            if header is None or (idat and previous != b"IDAT"):
                return None
            idat.append(body)
        elif kind == b"IEND":
            ended = True
            break
        elif kind not in _INERT_CHUNKS or header is None:
            return None
        previous = kind
    if not ended or header is None or not idat:
        return None
    width, height, depth, color_type, compression, filter_method, interlace = header
    channels = PNG_CHANNELS.get(color_type)
    if channels is None or depth not in (8, 16) or (compression, filter_method, interlace) != (0, 0, 0):
        return None
    if not 0 < width <= _MAX_SIDE or not 0 < height <= _MAX_SIDE or width * height > max_pixels:
        return None
    pixel_bytes = channels * depth // 8
    row_bytes = width * pixel_bytes
    expected = height * (row_bytes + 1)
    raw = _inflate(idat[0] if len(idat) == 1 else b"".join(idat), expected)
    if raw is None or len(raw) != expected:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, row_bytes + 1)
    filters = rows[:, 0]
    if int(filters.max()) > _FILTER_UP:
        return None  # average or Paeth rows: sequential within a row, left to libpng
    out = np.empty((height, row_bytes), np.uint8)
    if not filters.any():
        out[:] = rows[:, 1:]
    else:
        above = None  # the row above, unfiltered (the first row's 'up' adds zero)
        add = np.add
        for kind, line, row in zip(filters.tolist(), rows[:, 1:], out):
            if kind == _FILTER_NONE or (kind == _FILTER_UP and above is None):
                row[:] = line
            elif kind == _FILTER_UP:
                add(above, line, out=row)
            else:  # sub: each byte plus the same sample of the pixel to its left
                np.cumsum(line.reshape(width, pixel_bytes), axis=0, dtype=np.uint8, out=row.reshape(width, -1))
            above = row
    if depth == 16:
        return out.view(">u2").astype(np.uint16).reshape(height, width, channels)
    return out.reshape(height, width, channels)


# Chunks before the image data that change how its pixels are shown: a transparency key, an orientation
# (eXIf), a colour profile or description. A file holding one is not the same picture as its pixels alone.
SHOWN_OTHERWISE_CHUNKS = frozenset({b"tRNS", b"eXIf", b"iCCP", b"sRGB", b"gAMA", b"cHRM"})


def png_chunk_kinds(path) -> frozenset[bytes] | None:
    """The kinds of the chunks of a PNG file between IHDR and its image data, read from its chunk headers
    alone; None when it is not a PNG or cannot be read that far."""
    head = _header_and_chunk_kinds(path)
    return None if head is None else head[4]


def png_header(path) -> tuple[int, int, int, int, bool] | None:
    """(width, height, bit depth, colour type, whether a chunk of SHOWN_OTHERWISE_CHUNKS comes before the image
    data) of a PNG file, read from its chunk headers alone; None when it is not a PNG or cannot be read that
    far."""
    head = _header_and_chunk_kinds(path)
    if head is None:
        return None
    *layout, kinds = head
    return (*layout, bool(kinds & SHOWN_OTHERWISE_CHUNKS))


def png_has_alpha(path) -> bool | None:
    """Whether a PNG file has an alpha channel or a transparent colour (tRNS), from its chunk headers alone;
    None when it is not a PNG or cannot be read that far."""
    head = _header_and_chunk_kinds(path)
    return None if head is None else head[3] in (4, 6) or b"tRNS" in head[4]


def _header_and_chunk_kinds(path) -> tuple[int, int, int, int, frozenset[bytes]] | None:
    """(width, height, bit depth, colour type, the kinds of the chunks between IHDR and the image data)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != _SIGNATURE:
                return None
            length, kind = struct.unpack(">I4s", fh.read(8))
            if kind != b"IHDR" or length != 13:
                return None
            width, height, depth, color_type = struct.unpack(">IIBB", fh.read(10))
            fh.seek(length - 10 + 4, os.SEEK_CUR)  # the rest of IHDR and its CRC
            kinds = _chunk_kinds_to_data(fh)
    except (OSError, struct.error):
        return None
    return None if kinds is None else (width, height, depth, color_type, kinds)


def _chunk_kinds_to_data(fh) -> frozenset[bytes] | None:
    """The kinds of the chunks from `fh`'s position (a chunk's start) to the image data; None when the file
    ends first."""
    kinds = set()
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return None
        length, kind = struct.unpack(">I4s", head)
        if kind in (b"IDAT", b"IEND"):
            return frozenset(kinds)
        kinds.add(kind)
        fh.seek(length + 4, os.SEEK_CUR)


def _inflate(data: bytes, expected: int) -> bytes | bytearray | None:
    """The zlib stream `data` inflated, Adler-32 checked, never to more than `expected` bytes (a buffer of that
    size: no decompression bomb); None when it is damaged or holds more."""
    try:
        if _inflate_exact is not None:
            return _inflate_exact(data, expected)  # raises when the stream would not fit or is damaged
        inflater = _deflate.decompressobj()
        raw = inflater.decompress(data, expected)
        return raw if inflater.eof else None
    except Exception:  # noqa: BLE001 - damaged image data: the general decoder names the file
        return None


def _encode_libpng(frame: np.ndarray, level: int) -> bytes:
    code = cv2.COLOR_RGB2BGR if frame.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, code), [cv2.IMWRITE_PNG_COMPRESSION, level])
    if not ok:
        raise MediaError("cannot encode PNG")
    return buf.tobytes()
