"""Clips made of PNG frames (job previews, assembled clips): H.264, ProRes or GIF, written atomically, the same
bytes for the same inputs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

from PIL import Image

from semfi_batch.errors import MediaError
from semfi_batch.media.frame_pipes import TO_YUV_SCALE_FLAGS
from semfi_batch.media.rates import rate_arg
from semfi_batch.media.tools import tool_path


def encode_png_sequence(frames: Iterable[Path], out: Path, fps: float | Fraction, *, codec: str = "h264") -> None:
    """Encode PNG files (in order) into a clip, written atomically: `codec` "h264" (job previews, assembled
    clips; 8-bit 4:2:0, alpha not kept, an odd side one pixel longer: h264_size), "prores" (ProRes 422 HQ
    10-bit, or 4444 with alpha when the frames have it; .mov) or "gif" (one palette for the clip, looping, at
    most GIF_MAX_RATE). H.264 and ProRes are BT.709 and tagged so. The rate is exact (23.976 is 24000/1001).
    The same inputs give the same bytes (single-threaded encoders, bit-exact muxing, no metadata)."""
    frames = list(frames)
    if not frames:
        raise MediaError("no frames to encode")
    if codec not in CLIP_CODECS:
        raise MediaError(f"unknown clip codec {codec!r}; use one of {', '.join(CLIP_CODECS)}")
    muxer = CLIP_MUXERS.get(out.suffix.lower())
    if out.suffix.lower() not in clip_suffixes(codec):
        raise MediaError(codec_mismatch(codec, out))
    if (problem := clip_rate_problem(codec, fps)) is not None:
        raise MediaError(problem)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    faststart = ["-movflags", "+faststart"] if muxer in ("mp4", "mov") else []
    cmd = [
        tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y",
        "-f", "image2pipe", "-c:v", "png", "-framerate", rate_arg(fps), "-i", "pipe:0",
        *CLIP_CODECS[codec](*_alpha_and_size(frames[0])),
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


def clip_suffixes(codec: str) -> list[str]:
    """The file suffixes whose container holds `codec` here."""
    return [suffix for suffix, muxer in CLIP_MUXERS.items() if codec in _MUXER_CODECS[muxer]]


def codec_mismatch(codec: str, out: Path) -> str:
    """What to say when `out`'s container cannot hold `codec`."""
    return f"cannot write {codec} into {out.name}: give a name ending in {', '.join(clip_suffixes(codec))}"


# A GIF frame's delay is a whole number of hundredths of a second, and browsers and ffmpeg's own demuxer show a
# delay under 2/100 s for 1/10 s: 50 fps is the highest rate a GIF plays at.
GIF_MAX_RATE = Fraction(50)


def clip_rate_problem(codec: str, fps: float | Fraction) -> str | None:
    """Why a clip of `codec` cannot play at `fps` (a GIF above GIF_MAX_RATE), or None."""
    if codec == "gif" and Fraction(fps) > GIF_MAX_RATE:
        return (
            f"a GIF plays at most {GIF_MAX_RATE} fps (its frame delays are whole hundredths of a second, and "
            f"players show 1/100 s as 1/10 s), not {round(float(fps), 3):g}: give --fps {GIF_MAX_RATE} or less, "
            "or write .mp4/.mov/.mkv"
        )
    return None


def h264_size(width: int, height: int) -> tuple[int, int]:
    """The size of an H.264 clip of frames of this size: its 4:2:0 colour comes in 2x2 blocks, so an odd side
    gets one more pixel."""
    return width + width % 2, height + height % 2


def _to_h264_size(width: int, height: int) -> str:
    """Filters that make the frames h264_size by repeating their last column (row): an edge copied on is
    not seen, a black one is (pad's own fill)."""
    even_width, even_height = h264_size(width, height)
    if (even_width, even_height) == (width, height):
        return ""
    right, bottom = even_width - width, even_height - height
    return f"pad={even_width}:{even_height},fillborders=right={right}:bottom={bottom}:mode=smear,"


def _alpha_and_size(path: Path) -> tuple[bool, tuple[int, int]]:
    """Whether the PNG carries alpha, and its (width, height)."""
    with Image.open(path) as im:
        return im.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in im.info, im.size


def _to_yuv(pix_fmt: str, before: str = "") -> list[str]:
    """Filter and options that turn the RGB frames into `pix_fmt` by BT.709, limited range, and tag the clip so
    (the frames for encoders that take their tags from them, prores_ks; the stream for the rest). Untagged,
    a player picks the matrix itself (HD players BT.709, ffmpeg BT.601), and a clip encoded by another one
    shifts colour (a key of 200,30,30 came back 213,46,28). BT.709 for every size: sRGB keys share its
    primaries, and players that honour tags (browsers, QuickTime, editors) then decode what was encoded."""
    convert = f"scale=out_color_matrix=bt709:out_range=tv:flags={TO_YUV_SCALE_FLAGS},format={pix_fmt}"
    tags = "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
    return [
        "-vf", f"{before}{convert},{tags}", "-pix_fmt", pix_fmt,
        "-color_range", "tv", "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
    ]  # fmt: skip


# Encoder arguments per clip codec, given whether the frames carry alpha and their (width, height).
CLIP_CODECS = {
    "h264": lambda alpha, size: [
        *_to_yuv("yuv420p", before=_to_h264_size(*size)),
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
    ],
    "prores": lambda alpha, size: [
        *_to_yuv("yuva444p10le" if alpha else "yuv422p10le"),
        "-c:v", "prores_ks", "-profile:v", "4444" if alpha else "3", "-vendor", "apl0",
    ],
    "gif": lambda alpha, size: [
        "-filter_complex", "[0:v]split[a][b];[a]palettegen=reserve_transparent=1[p];[b][p]paletteuse",
        "-loop", "0",
    ],
}  # fmt: skip
# Muxer per file suffix: the container is always the one the name says.
CLIP_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".gif": "gif"}
# Which codecs each container can hold here.
_MUXER_CODECS = {"mp4": {"h264"}, "mov": {"h264", "prores"}, "matroska": {"h264", "prores"}, "gif": {"gif"}}
