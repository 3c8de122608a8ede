"""Frames as images: reading keyframe image files, their layouts, and writing frames losslessly as PNG
(exact frames of a video are read by media/video_frames.py; clips of PNG frames made by media/clips.py).

Frames are numpy arrays of shape (height, width, channels): RGB (3 channels) or RGBA (4, alpha kept
wherever the source has it), uint8 for 8-bit sources and uint16 (full 0-65535 range) for deeper ones.
PNG holds all four kinds, so nothing is reduced on the way through a run."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from semfi_batch.atomic_write import write_atomic
from semfi_batch.errors import MediaError
from semfi_batch.media.colour_profile import ColourProfile
from semfi_batch.media.png import (  # noqa: F401 - re-exported
    PNG_LEVEL_ENV,
    decode_png,
    encode_png,
    encode_png_parts,
    png_has_alpha,
    png_level,
)
from semfi_batch.media.premultiplied import has_partial_alpha, premultiplied, straight

# Refuse images above this many pixels before decoding them (decompression bombs).
MAX_IMAGE_PIXELS = 100_000_000


# The last chunk of every complete PNG file: length 0, type IEND, its CRC.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PNG_TAIL = 64 * 1024  # where IEND is looked for, from the end of the file


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header; a PNG must also end with its IEND chunk (a file
    cut short is refused here; damage inside is found when the frame is decoded). MediaError if unreadable.
    Reading the whole file to check every chunk's CRC cost 2 ms per 720p key on every run, resumes too."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            if im.format != "TIFF" and _orientation(im) >= 5:  # turned by a quarter: shown the other way round
                width, height = height, width  # (PIL gives a TIFF's size as shown already, and OpenCV turns it)
            if im.format == "PNG":
                with open(path, "rb") as fh:
                    fh.seek(max(0, os.fstat(fh.fileno()).st_size - PNG_TAIL), os.SEEK_SET)
                    if PNG_END not in fh.read():  # (some tools append a little data after IEND)
                        raise MediaError("the file ends before its last chunk (cut short?)")
    except FileNotFoundError:
        raise MediaError(f"image not found: {path}") from None
    except Exception as exc:  # PIL raises many types for corrupt files
        raise MediaError(f"cannot read image {path}: {exc}") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise MediaError(f"image {path} is {width}x{height}, over the {MAX_IMAGE_PIXELS} pixel limit")
    return width, height


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to RGB, or RGBA when it has alpha, at its own depth (uint8, or uint16 for 16-bit
    PNG/TIFF), as a viewer shows it: turned by its EXIF orientation, colour not premultiplied by alpha. Gray
    becomes RGB (the same levels in each channel); nothing else is changed."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        data = b""  # image_size names what is wrong
    fast = decode_png(data, MAX_IMAGE_PIXELS)  # ours, the keyframe cache's and ffmpeg's PNGs, checked whole
    if fast is not None:
        return fast
    image_size(path)  # header checks before OpenCV decodes anything: no bomb is ever decoded
    with Image.open(path) as im:
        orientation, form = _orientation(im), im.format
        tiff = _TiffLayout.of(im) if form == "TIFF" else None
        if tiff and tiff.bits == 8 and im.mode == "RGBA" and not tiff.premultiplied:
            # OpenCV reads 8-bit straight-alpha TIFF premultiplied (straight (200, 100, 50, 128) came back (100,
            # 50, 25, 128)); PIL keeps it. It reads such a TIFF turned by its orientation tag inconsistently (size
            # and pixels disagree): that one is refused. Associated alpha OpenCV reads as stored, at every depth,
            # and is divided out below, by one rule.
            if orientation != 1:
                raise MediaError(f"image {path} is an 8-bit RGBA TIFF turned by its orientation tag; save it upright")
            return np.asarray(im)
    if tiff and tiff.planes_apart and tiff.bits != 8:
        # OpenCV decodes 8-bit separate planes right, deeper ones as if interleaved (a scrambled picture).
        img = _oriented(_read_tiff_planes(path), orientation)
    else:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise MediaError(f"cannot decode image {path}")
        if form != "TIFF":  # OpenCV turns TIFFs by their orientation itself, other formats not when UNCHANGED
            img = _oriented(img, orientation)
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if img.dtype not in (np.uint8, np.uint16):
        raise MediaError(f"image {path} has {img.dtype} samples; 8- and 16-bit images are supported")
    if img.ndim == 2:
        if _has_gray_alpha(path):
            raise MediaError(f"image {path} is gray with alpha, which cannot be read without losing the alpha")
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if tiff and tiff.premultiplied and img.shape[2] == 4:
        return _straight_alpha(img)
    return img


# TIFF tags read to choose a decoder (TIFF 6.0): bits per sample, planar configuration, extra samples.
_TIFF_BITS, _TIFF_PLANAR, _TIFF_EXTRA = 258, 284, 338


@dataclass(frozen=True)
class _TiffLayout:
    """What of a TIFF's layout decides how it is decoded."""

    bits: int  # per sample (the largest, where they differ)
    planes_apart: bool  # PlanarConfiguration 2: each colour in its own plane (1: interleaved)
    premultiplied: bool  # ExtraSamples 1: the first extra sample (RGBA's alpha) is associated alpha (2: straight)

    @classmethod
    def of(cls, im: Image.Image) -> _TiffLayout:
        return cls(
            bits=max(_tiff_tag(im, _TIFF_BITS), default=1),
            planes_apart=_tiff_tag(im, _TIFF_PLANAR) == (2,),
            premultiplied=_tiff_tag(im, _TIFF_EXTRA)[:1] == (1,),
        )


def _tiff_tag(im: Image.Image, tag: int) -> tuple:
    value = im.tag_v2.get(tag, ())
    return value if isinstance(value, tuple) else (value,)


def _read_tiff_planes(path: Path) -> np.ndarray:
    """A TIFF stored in separate colour planes as one (height, width, channels) array, as stored (not turned)."""
    import tifffile  # (scikit-image's TIFF reader; imported here, as only such TIFFs need it)

    try:
        planes = tifffile.imread(path, key=0)
    except Exception as exc:  # noqa: BLE001 - LZW and JPEG need the imagecodecs package, not installed
        raise MediaError(
            f"cannot decode image {path}, a TIFF with separate colour planes ({exc}); save it with interleaved "
            "(contiguous) channels, or uncompressed"
        ) from None
    if planes.ndim == 3:
        planes = np.moveaxis(planes, 0, -1)
    if planes.ndim == 3 and planes.shape[2] not in (3, 4):
        raise MediaError(f"image {path} is a TIFF with {planes.shape[2]} separate planes; RGB and RGBA are read")
    return np.ascontiguousarray(planes, dtype=planes.dtype.newbyteorder("="))


def _straight_alpha(rgba: np.ndarray) -> np.ndarray:
    """RGBA whose colour is multiplied by its alpha (associated alpha) with the colour divided back out, at
    any depth, by PIL's rule for 8-bit RGBa: rounded down, at most full scale, and 0 where alpha is 0."""
    top = np.iinfo(rgba.dtype).max
    alpha = rgba[..., 3:4].astype(np.int64)
    colour = rgba[..., :3].astype(np.int64)
    straight = rgba.copy()
    straight[..., :3] = np.where(alpha == 0, 0, np.minimum(colour * top // np.maximum(alpha, 1), top))
    return straight


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8; 1 when none) of an open image: JPEG, PNG (eXIf), WebP, TIFF."""
    try:
        if im.format == "PNG":  # its eXIf chunk as read with the header: getexif() would decode the whole image
            raw = im.info.get("exif")
            exif = Image.Exif()
            if raw:
                exif.load(raw)
        else:
            exif = im.getexif()
        value = exif.get(0x0112) or 1  # (a TIFF's own orientation tag is among them)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: shown as stored, as viewers do
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# EXIF orientation -> how the stored picture is turned to be shown (numpy on (height, width, ...) arrays).
_ORIENT = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1), 6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: a.swapaxes(0, 1)[::-1],
}  # fmt: skip


def _oriented(img: np.ndarray, orientation: int) -> np.ndarray:
    turn = _ORIENT.get(orientation)
    return img if turn is None else np.ascontiguousarray(turn(img))


def may_have_alpha(path: Path) -> bool:
    """Whether an image file has an alpha channel or a transparent colour, by its header (False where it
    cannot be read: read_image names such files). A PNG's chunk headers say it without Pillow (job planning
    asks it of every key image)."""
    in_png = png_has_alpha(path)
    if in_png is not None:
        return in_png
    try:
        with Image.open(path) as im:
            return "A" in im.mode or "a" in im.mode or "transparency" in im.info
    except Exception:  # noqa: BLE001 - unreadable files are named by read_image
        return False


def _has_gray_alpha(path: Path) -> bool:
    with Image.open(path) as im:
        return im.mode in ("LA", "La", "PA") or "transparency" in im.info


def as_rgb8(frame: np.ndarray) -> np.ndarray:
    """An RGB uint8 view of a frame for display and 8-bit figures: 16-bit scaled down, alpha composited
    over black. Never used for outputs."""
    if frame.dtype == np.uint16:
        frame = (frame.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if frame.shape[2] == 4:
        alpha = frame[..., 3:4].astype(np.float32) / 255.0
        frame = (frame[..., :3].astype(np.float32) * alpha + 0.5).astype(np.uint8)
    return frame


def common_layout(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two frames in one layout, the richer of theirs, losslessly: uint8 widened to uint16 (x257) when the
    other is 16-bit, RGB given an opaque alpha when the other has alpha."""
    deep = np.uint16 if np.uint16 in (a.dtype, b.dtype) else np.uint8
    channels = max(a.shape[2], b.shape[2])

    def widen(f: np.ndarray) -> np.ndarray:
        if f.dtype != deep:
            f = f.astype(np.uint16) * 257
        if f.shape[2] < channels:
            f = np.dstack([f, np.full(f.shape[:2], np.iinfo(f.dtype).max, f.dtype)])
        return f

    return widen(a), widen(b)


def read_image_rgb8(path: Path) -> np.ndarray:
    """`read_image` reduced to RGB uint8 by `as_rgb8` (for pictures on a page, not for outputs)."""
    return as_rgb8(read_image(path))


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a frame (RGB or RGBA, uint8 or uint16) to (width, height) (area filter when shrinking)."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = width * height < frame.shape[0] * frame.shape[1]
    return scaled(frame, width, height, cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def scaled(frame: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    """`frame` scaled to (width, height) by an OpenCV filter; with partial alpha, premultiplied (the colour under
    a transparent pixel bled into the edges: a white disk over transparent magenta came out up to 254 levels
    off white where it shows)."""
    if not has_partial_alpha(frame):
        return cv2.resize(frame, (width, height), interpolation=interpolation)
    return straight(cv2.resize(premultiplied(frame), (width, height), interpolation=interpolation), frame.dtype)


def write_png(path: Path, frame: np.ndarray, *, sync: bool = True, colour: ColourProfile | None = None) -> str:
    """Write a frame as a lossless PNG (8 or 16 bits, RGB or RGBA, as the array is), atomically (temporary
    name, fsync, rename). Returns the SHA-256 of the bytes written (a job's record lists it). `sync=False`
    leaves the fsync to the caller (a job's writer syncs its files behind it); `colour`: the colour description
    its colours are in (that of the keys it was made from: media/colour_profile.py)."""
    try:
        parts = encode_png_parts(frame, colour)
    except MediaError as exc:
        raise MediaError(f"{exc} ({path})") from None
    write_atomic(path, *parts, sync=sync)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()
