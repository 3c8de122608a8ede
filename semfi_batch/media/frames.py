"""Reading keyframes (image files or exact frames of a video) and writing frames losslessly."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from semfi_batch.errors import FrameExtractError, MediaError
from semfi_batch.media.probe import VideoInfo
from semfi_batch.media.tools import run_tool, tool_path

# Refuse images above this many pixels before decoding them (decompression bombs).
MAX_IMAGE_PIXELS = 100_000_000


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only. MediaError if unreadable."""
    try:
        with Image.open(path) as im:
            im.verify()
            width, height = im.size
    except FileNotFoundError:
        raise MediaError(f"image not found: {path}") from None
    except Exception as exc:  # PIL raises many types for corrupt files
        raise MediaError(f"cannot read image {path}: {exc}") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise MediaError(f"image {path} is {width}x{height}, over the {MAX_IMAGE_PIXELS} pixel limit")
    return width, height


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to RGB uint8 (alpha dropped, 16-bit scaled to 8)."""
    image_size(path)  # header checks first: no bomb is ever decoded
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MediaError(f"cannot decode image {path}")
    return _to_rgb8(img)


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint16:
        img = (img / 257.0 + 0.5).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def extract_frame(info: VideoInfo, index: int) -> np.ndarray:
    """Decode frame `index` (0-based, presentation order) of the video exactly, as RGB uint8.

    Seeks to the midpoint between the frame's timestamp and its predecessor's: ffmpeg's accurate seek
    then delivers the first frame at or after that point, which is exactly frame `index`."""
    if not 0 <= index < info.frame_count:
        raise FrameExtractError(f"frame {index} is outside {info.path} (0..{info.frame_count - 1})")
    args = ["ffmpeg", "-nostdin", "-v", "error"]
    if index > 0:
        seek = (info.frame_times[index - 1] + info.frame_times[index]) / 2.0
        args += ["-ss", f"{seek:.6f}"]
    args += ["-i", str(info.path), "-map", "0:v:0", "-frames:v", "1", "-an", "-sn", "-dn"]
    args += ["-f", "image2pipe", "-c:v", "png", "-pix_fmt", "rgb24", "-"]
    out = run_tool(args, what=f"cannot decode frame {index} of {info.path}")
    img = cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_COLOR) if out else None
    if img is None:
        raise FrameExtractError(f"cannot decode frame {index} of {info.path}: no picture came out")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an RGB frame to (width, height) (area filter when shrinking)."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = width * height < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def write_png(path: Path, frame: np.ndarray) -> None:
    """Write an RGB frame as a lossless PNG, atomically (temporary name, fsync, rename)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise MediaError(f"cannot encode PNG for {path}")
    write_bytes_atomic(path, buf.tobytes())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same folder, fsynced, then renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def encode_png_sequence(frames: Iterable[Path], out: Path, fps: float) -> None:
    """Encode PNG files (in order) into an H.264 clip (job previews, assembled keyframe clips), written
    atomically. The same inputs give the same bytes (single-threaded x264, bit-exact muxing, no metadata)."""
    frames = list(frames)
    if not frames:
        raise MediaError("no frames to encode")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}.mp4")
    cmd = [
        tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y",
        "-f", "image2pipe", "-c:v", "png", "-framerate", f"{fps:.6f}", "-i", "pipe:0",
        "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
        "-pix_fmt", "yuv420p", "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-map_metadata", "-1", "-movflags", "+faststart", str(tmp),
    ]  # fmt: skip
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            for path in frames:
                proc.stdin.write(path.read_bytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        stderr = proc.stderr.read()
        proc.wait()
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"cannot encode preview {out}: {stderr.decode(errors='replace').strip()[-300:]}")
    os.replace(tmp, out)
