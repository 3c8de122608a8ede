"""Reading keyframes (image files or exact frames of a video) and writing frames losslessly.

Frames are numpy arrays of shape (height, width, channels): RGB (3 channels) or RGBA (4, alpha kept
wherever the source has it), uint8 for 8-bit sources and uint16 (full 0-65535 range) for deeper ones.
PNG holds all four kinds, so nothing is reduced on the way through a run."""

from __future__ import annotations

import hashlib
import os
import queue
import re
import subprocess
import tempfile
import threading
from collections.abc import Generator, Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from semfi_batch.atomic_write import write_atomic
from semfi_batch.errors import FrameExtractError, MediaError
from semfi_batch.media.png import (  # noqa: F401 - re-exported
    PNG_LEVEL_ENV,
    decode_png,
    encode_png,
    encode_png_parts,
    png_level,
)
from semfi_batch.media.probe import VideoInfo, parse_showinfo_line
from semfi_batch.media.rates import rate_arg
from semfi_batch.media.side_alpha import decoder_args
from semfi_batch.media.tools import tool_path

# Refuse images above this many pixels before decoding them (decompression bombs).
MAX_IMAGE_PIXELS = 100_000_000
# A batch whose first frame lies at least this many frames into the video starts with a seek to an earlier
# keyframe (when the video's frame times allow the landing point to be verified); nearer ones decode from
# the start, which is always exact.
SEEK_MIN_FRAMES = 250
# Seek this far (in seconds) before the first wanted frame: ffmpeg lands on the keyframe at or before that
# time, and the frames from there to the wanted one are decoded and identified by their times.
SEEK_LEAD_S = 1.0


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
    PNG/TIFF). Gray becomes RGB (the same levels in each channel); nothing else is changed."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        data = b""  # image_size names what is wrong
    fast = decode_png(data, MAX_IMAGE_PIXELS)  # ours, the keyframe cache's and ffmpeg's PNGs, checked whole
    if fast is not None:
        return fast
    image_size(path)  # header checks before OpenCV decodes anything: no bomb is ever decoded
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise MediaError(f"cannot decode image {path}")
    if img.dtype not in (np.uint8, np.uint16):
        raise MediaError(f"image {path} has {img.dtype} samples; 8- and 16-bit images are supported")
    if img.ndim == 2:
        if _has_gray_alpha(path):
            raise MediaError(f"image {path} is gray with alpha, which cannot be read without losing the alpha")
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


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


def frame_layout(info: VideoInfo) -> tuple[str, np.dtype, int]:
    """(ffmpeg raw pixel format, numpy dtype, channels) that `extract_frames` delivers for this video:
    rgb24 / rgb48le for sources without alpha, rgba / rgba64le with alpha; 16 bits for sources above 8."""
    deep = info.bit_depth > 8
    if info.has_alpha:
        return ("rgba64le", np.dtype("<u2"), 4) if deep else ("rgba", np.dtype(np.uint8), 4)
    return ("rgb48le", np.dtype("<u2"), 3) if deep else ("rgb24", np.dtype(np.uint8), 3)


def extract_frame(info: VideoInfo, index: int, *, deinterlace: bool = False) -> np.ndarray:
    """Frame `index` (0-based: the index-th frame of a sequential decode, presentation order) of the video,
    exactly, in `frame_layout(info)`, upright (display rotation applied). With `deinterlace`, the frame
    as ffmpeg's bwdif makes it whole (one frame per frame, so the numbering is the same)."""
    return extract_frames(info, [index], deinterlace=deinterlace)[index]


def extract_frames(info: VideoInfo, indices: Iterable[int], *, deinterlace: bool = False) -> dict[int, np.ndarray]:
    """Every requested frame of one video (see `extract_frame`), read in one forward decode. Returns
    {index: frame}."""
    return dict(iter_frames(info, indices, deinterlace=deinterlace))


def iter_frames(
    info: VideoInfo, indices: Iterable[int], *, deinterlace: bool = False
) -> Iterable[tuple[int, np.ndarray]]:
    """(index, frame) for the requested frames in increasing index order, streamed from one forward decode.

    Where the probed frame times identify frames (`info.seekable`), each delivered frame is named by its own
    time: decoding starts at the beginning, or, when the first wanted frame lies SEEK_MIN_FRAMES or more in,
    at the keyframe at least SEEK_LEAD_S before it (frames the seek did not deliver are read again from the
    start, and all of them when it did not land on a keyframe the decoder confirms; those after a picture the
    decoder reports concealing, which it conceals from other pictures than a decode from the start has).
    Elsewhere frames are counted from the start of a sequential decode, which is what the frame list of such
    videos is made of.
    FrameExtractError for an index outside the video, a frame that does not decode, or frames that change
    size mid-way."""
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return
    for i in (wanted[0], wanted[-1]):
        if not 0 <= i < info.frame_count:
            raise FrameExtractError(f"frame {i} is outside {info.path} (0..{info.frame_count - 1})")
    if not info.seekable:
        yield from _decode_counting(info, wanted, deinterlace)
        return
    missing = wanted
    seek = info.frame_time(wanted[0]) - SEEK_LEAD_S if wanted[0] >= SEEK_MIN_FRAMES else 0.0
    for start in [seek, None] if seek > 0 else [None]:
        got = set()
        try:
            for index, frame in _decode_by_time(info, missing, start, deinterlace):
                got.add(index)
                yield index, frame
        except _TimesOutOfOrder:
            if start is not None:
                missing = [i for i in missing if i not in got]
                continue
            # From the start, the frames delivered so far came in the probed order; after this point the
            # frames' times do not say which frame is which. The decode's own count does.
            yield from _decode_counting(info, [i for i in missing if i not in got], deinterlace)
            return
        missing = [i for i in missing if i not in got]
        if not missing:
            return
    raise FrameExtractError(f"cannot decode frame {missing[0]} of {info.path}: the decoder delivered no such frame")


class _TimesOutOfOrder(Exception):
    """A decode delivered a frame whose time is not later than the one before it: from there on, the frames'
    times do not identify them (times edited out of order; a decoder stamping frames by decode times)."""


# bwdif, one frame out per frame in, before select (it needs the neighbouring frames).
_DEINTERLACE = "bwdif=mode=send_frame:parity=auto:deint=all,"


def _decode_counting(info: VideoInfo, wanted: list[int], deinterlace: bool) -> Iterable[tuple[int, np.ndarray]]:
    """Decode from the start, keeping frames whose position in the decode (select's n) is wanted."""
    graph = (_DEINTERLACE if deinterlace else "") + f"select='{_select_expr('n', _runs(wanted))}'"
    frames = _decode(info, [], graph, len(wanted), counted=True)
    count = 0
    for index, frame in zip(wanted, frames, strict=False):
        count += 1
        yield index, frame
    if count < len(wanted):
        raise FrameExtractError(
            f"cannot decode frame {wanted[count]} of {info.path}: the decode ended after {count} of "
            f"{len(wanted)} wanted frames"
        )


def _decode_by_time(
    info: VideoInfo, wanted: list[int], seek: float | None, deinterlace: bool = False
) -> Iterable[tuple[int, np.ndarray]]:
    """Decode from the start, or from the keyframe at or before `seek` (s from the container start), keep the
    frames whose time is a wanted frame's, and name each by its own time (showinfo, after select). Yields
    only frames it identified; _TimesOutOfOrder when a frame's time is not later than the one's before it."""
    ft = info.frame_times
    steps = np.diff(ft)
    eps = min(1e-3, 0.25 * float(steps.min())) if steps.size else 1e-3
    # -copyts: filter times are the file's own, so the wanted times are the probed ones plus the container start.
    centres = [info.start_time + float(ft[i]) for i in wanted]
    windows = [(c - eps, c + eps) for c in centres]
    # Every frame whose time is not later than the frame's before it passes too (variables 1-3), and ends the
    # identification by time (_TimesOutOfOrder).
    select = f"st(3,ld(2)*lte(t,ld(1)));st(1,t);st(2,1);if(ld(3),1,{_select_expr('t', windows)})"
    if seek is not None:
        # The decode starts where the container's index says a keyframe is. Some indexes flag every frame (old
        # AVIs, an MP4 without its keyframe table), and the decoder then makes pictures from missing references,
        # with the right times. So the seek is trusted only when the first frame it delivers is a keyframe coded
        # intra (or of no stated type: decoders that give none). Else only that frame passes; it names no wanted
        # frame, this decode is dropped and the frames are read from the start.
        select = f"if(eq(n,0),st(0,key*lte(pict_type,PICT_TYPE_I)));if(ld(0),{select},eq(n,0))"
    graph = (_DEINTERLACE if deinterlace else "") + f"select='{select}'"
    # -ss counts from the container start (ffmpeg adds the start time); -copyts keeps the file's own times.
    args = ["-noaccurate_seek", "-ss", f"{seek:.6f}", "-copyts"] if seek is not None else ["-copyts"]
    times: list[float] = []
    concealed: list[int] = []
    frames = _decode(info, args, graph, len(wanted), times=times, concealed=concealed)
    expected = set(wanted)
    last = -np.inf
    try:
        for frame in frames:
            if seek is not None and concealed[-1]:
                # A damaged picture met after the seek (the keyframe it landed on, or one before this frame) was
                # concealed from other pictures than in a decode from the start: trust nothing more from it.
                return
            stamp = times[-1] - info.start_time if times else float("nan")
            if stamp <= last:
                raise _TimesOutOfOrder
            last = stamp
            k = int(np.searchsorted(ft, stamp - eps))
            if not (k < ft.shape[0] and abs(float(ft[k]) - stamp) <= eps and k in expected):
                if seek is not None and len(times) == 1:
                    return  # the seek landed on a frame the decoder does not call a keyframe: trust nothing
                raise _TimesOutOfOrder  # a frame whose time went back passed select
            expected.discard(k)
            yield k, frame
    finally:
        frames.close()  # stops ffmpeg at once when this decode is left early


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [(a, b) for a, b in runs]


def _select_expr(var: str, ranges: Sequence[tuple[float, float]]) -> str:
    """A select expression true inside any of the sorted, disjoint `ranges` of `var`: a balanced tree of
    if(lt(...)) tests, so each frame costs log(len(ranges)) comparisons."""
    if len(ranges) == 1:
        lo, hi = ranges[0]
        return f"between({var},{lo!r},{hi!r})" if var == "t" else f"between({var},{lo},{hi})"
    mid = len(ranges) // 2
    pivot = ranges[mid][0]
    pivot_s = repr(pivot) if var == "t" else str(pivot)
    return f"if(lt({var},{pivot_s}),{_select_expr(var, ranges[:mid])},{_select_expr(var, ranges[mid:])})"


def _decode(
    info: VideoInfo,
    input_args: list[str],
    graph: str,
    count: int,
    *,
    times: list[float] | None = None,
    concealed: list[int] | None = None,
    counted: bool = False,
) -> Generator[np.ndarray, None, None]:
    """Run one ffmpeg decode of the first video stream through `graph` and yield up to `count` raw frames in
    `frame_layout(info)`. With `times`, showinfo's time of each frame is appended before it is yielded; with
    `concealed`, how many pictures the decoder had reported concealing before that frame's time (it reports
    a damaged picture while decoding it, before the filters see it).
    FrameExtractError for a frame of another size than the probe's (ffmpeg would scale it to the first size),
    and, when `graph` selects frames by their count (`counted`), for a decode whose filters ffmpeg set up
    again mid-way (a change of size or pixel format): the count starts again from zero there."""
    pix_fmt, dtype, channels = frame_layout(info)
    width, height = info.display_size  # ffmpeg turns frames upright (its rotation filters come before ours)
    frame_bytes = width * height * channels * dtype.itemsize
    graph += ",showinfo=checksum=0"  # each frame's time and size as decoded, before any scaling to the output
    script = None
    cmd = [tool_path("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]
    cmd += [*decoder_args(info.decoder), *input_args, "-i", str(info.path), "-map", "0:v:0", "-an", "-sn", "-dn"]
    cmd += ["-fps_mode", "passthrough"]
    if len(graph) > 20_000:  # beyond what one argument should carry
        script = _write_script(graph)
        cmd += ["-filter_script:v", str(script)]
    else:
        cmd += ["-vf", graph]
    cmd += ["-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    stamps = _TimeLog()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
    log = _StderrReader(proc, stamps)
    delivered = 0
    try:
        for _ in range(count):
            data = read_exact(proc.stdout, frame_bytes)
            if len(data) < frame_bytes:
                if data:  # a frame of another size than the probe's: the stream changes size mid-way
                    raise FrameExtractError(
                        f"cannot read frames of {info.path}: a decoded frame is not {width}x{height} as probed"
                    )
                break
            stamp, size, setups, concealed_before = stamps.next()
            if size is not None and size != (width, height):
                raise FrameExtractError(
                    f"cannot read frames of {info.path}: its frames change size mid-way ({size[0]}x{size[1]} "
                    f"after {width}x{height} at the start); split it where the size changes"
                )
            if counted and setups > 1:
                raise _changes_format(info)
            if times is not None:
                times.append(stamp)
            if concealed is not None:
                concealed.append(concealed_before)
            delivered += 1
            yield np.frombuffer(data, dtype).reshape(height, width, channels).astype(dtype.newbyteorder("="))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        rc = proc.wait()
        log.join()
        if script is not None:
            script.unlink(missing_ok=True)
    if delivered < count and counted and log.setups > 1:
        raise _changes_format(info)
    if delivered < count and rc not in (0, -9):  # a failure after every wanted frame is no failure of ours
        raise FrameExtractError(f"cannot decode {info.path}: {log.last_error()}")


def _changes_format(info: VideoInfo) -> FrameExtractError:
    return FrameExtractError(
        f"cannot count the frames of {info.path}: its frames change size or pixel format mid-way; split it where "
        "they change"
    )


def read_exact(stream, size: int) -> bytes:
    """`size` bytes from a pipe, or fewer when it ends first (b"" at its end)."""
    chunks, got = [], 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_script(text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="semfi-select-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return Path(name)


class _TimeLog:
    """Each frame's (time, (width, height), how many times the filters had been set up, how many pictures the
    decoder had reported concealing) from showinfo lines, handed over in order (blocking until the next one is
    logged; NaN, None, 0, 0 when the log ended first)."""

    def __init__(self) -> None:
        self.items: queue.Queue[tuple[float | None, tuple[int, int] | None, int, int] | None] = queue.Queue()
        self.ended = False

    def next(self) -> tuple[float, tuple[int, int] | None, int, int]:
        item = None if self.ended else self.items.get(timeout=60)
        if item is None:
            self.ended = True
            return float("nan"), None, 0, 0
        stamp, size, setups, concealed = item
        return (float("nan") if stamp is None else stamp), size, setups, concealed


_FRAME_SIZE_RE = re.compile(r"\bs:(\d+)x(\d+)")
# libavcodec's error resilience (H.264, MPEG-1/2/4, H.263 and their kin) reports each damaged picture it
# conceals so; decoders without it (HEVC, VP9, AV1) say nothing comparable.
_CONCEALED_RE = re.compile(r"concealing \d+ DC, \d+ AC, \d+ MV errors")


class _StderrReader:
    """Reads ffmpeg's log on a thread: showinfo's frame times and sizes go to `stamps`, the rest is kept for
    error messages. `setups`: how many times showinfo was configured (more than once: ffmpeg set the filters
    up again for frames of another size or pixel format); `concealed`: how many damaged pictures the decoder
    reported concealing."""

    def __init__(self, proc: subprocess.Popen, stamps: _TimeLog):
        self.proc, self.stamps = proc, stamps
        self.setups = 0
        self.concealed = 0
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        time_base = None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            if "showinfo" in line:
                kind, value = parse_showinfo_line(line, time_base)
                if kind == "time_base":
                    time_base = value
                    self.setups += 1
                elif kind == "time":
                    size = _FRAME_SIZE_RE.search(line)
                    frame_size = (int(size[1]), int(size[2])) if size else None
                    self.stamps.items.put((value, frame_size, self.setups, self.concealed))
                continue
            self.concealed += _CONCEALED_RE.search(line) is not None
            if line.strip():
                self.lines.append(line.strip())
                del self.lines[:-20]
        self.stamps.items.put(None)

    def join(self) -> None:
        self.thread.join(timeout=10)
        self.proc.stderr.close()

    def last_error(self) -> str:
        errs = [ln for ln in self.lines if not ln.startswith(("Input #", "Output #", "Stream", "Metadata"))]
        return (errs or self.lines or ["ffmpeg failed"])[-1]


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a frame (RGB or RGBA, uint8 or uint16) to (width, height) (area filter when shrinking)."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = width * height < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def write_png(path: Path, frame: np.ndarray, *, sync: bool = True) -> str:
    """Write a frame as a lossless PNG (8 or 16 bits, RGB or RGBA, as the array is), atomically (temporary
    name, fsync, rename). Returns the SHA-256 of the bytes written (a job's record lists it). `sync=False`
    leaves the fsync to the caller (a job's writer syncs its files behind it)."""
    try:
        parts = encode_png_parts(frame)
    except MediaError as exc:
        raise MediaError(f"{exc} ({path})") from None
    write_atomic(path, *parts, sync=sync)
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def encode_png_sequence(frames: Iterable[Path], out: Path, fps: float | Fraction, *, codec: str = "h264") -> None:
    """Encode PNG files (in order) into a clip, written atomically: `codec` "h264" (job previews, assembled
    clips; 8-bit 4:2:0, alpha not kept), "prores" (ProRes 422 HQ 10-bit, or 4444 with alpha when the frames
    have it; .mov) or "gif" (one palette for the clip, looping). The rate is exact (23.976 is 24000/1001).
    The same inputs give the same bytes (single-threaded encoders, bit-exact muxing, no metadata)."""
    frames = list(frames)
    if not frames:
        raise MediaError("no frames to encode")
    if codec not in CLIP_CODECS:
        raise MediaError(f"unknown clip codec {codec!r}; use one of {', '.join(CLIP_CODECS)}")
    muxer = CLIP_MUXERS.get(out.suffix.lower())
    if muxer is None or codec not in _MUXER_CODECS[muxer]:
        fits = ", ".join(s for s, m in CLIP_MUXERS.items() if codec in _MUXER_CODECS[m])
        raise MediaError(f"cannot write {codec} into {out.name}: give a name ending in {fits}")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    faststart = ["-movflags", "+faststart"] if muxer in ("mp4", "mov") else []
    cmd = [
        tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y",
        "-f", "image2pipe", "-c:v", "png", "-framerate", rate_arg(fps), "-i", "pipe:0",
        *CLIP_CODECS[codec](_has_alpha_png(frames[0])),
        "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
        *faststart, "-f", muxer, str(tmp),
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
        raise MediaError(f"cannot encode {out}: {stderr.decode(errors='replace').strip()[-300:]}")
    os.replace(tmp, out)


def _has_alpha_png(path: Path) -> bool:
    with Image.open(path) as im:
        return im.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in im.info


# Encoder arguments per clip codec, given whether the frames carry alpha.
CLIP_CODECS = {
    "h264": lambda alpha: [
        "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
        "-pix_fmt", "yuv420p",
    ],
    "prores": lambda alpha: [
        "-c:v", "prores_ks", "-profile:v", "4444" if alpha else "3", "-vendor", "apl0",
        "-pix_fmt", "yuva444p10le" if alpha else "yuv422p10le",
    ],
    "gif": lambda alpha: [
        "-filter_complex", "[0:v]split[a][b];[a]palettegen=reserve_transparent=1[p];[b][p]paletteuse",
        "-loop", "0",
    ],
}  # fmt: skip
# Muxer per file suffix: the container is always the one the name says.
CLIP_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".gif": "gif"}
# Which codecs each container can hold here.
_MUXER_CODECS = {"mp4": {"h264"}, "mov": {"h264", "prores"}, "matroska": {"h264", "prores"}, "gif": {"gif"}}
