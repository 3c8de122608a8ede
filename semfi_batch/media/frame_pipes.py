"""Raw frames through ffmpeg: decode a range of a video, turn generated images into the source's pixel format,
and encode raw frames at exact timestamps."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from semfi_batch.errors import MediaError
from semfi_batch.media.probe import parse_showinfo_line, pixel_format_facts, showinfo_picture
from semfi_batch.media.side_alpha import decoder_args
from semfi_batch.media.stream_facts import StreamFacts, colour_args
from semfi_batch.media.tools import ffmpeg_filters, run_tool, tool_path

if TYPE_CHECKING:
    from semfi_batch.media.encode import EncoderChoice


# Raw frame output keeps every frame: no frame-rate conversion, and the stream's own clock so that close
# timestamps (VFR, millisecond containers) never collide in the 1/frame-rate default.
RAW_TIMING = ("-fps_mode", "passthrough", "-enc_time_base", "-1")
# The level tag of a log line written with `-loglevel level+...`.
_LEVEL_TAG = re.compile(r"\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ")


@lru_cache(maxsize=32)
def raw_frame_bytes(pix_fmt: str, width: int, height: int) -> int:
    """Size in bytes of one rawvideo frame (as ffmpeg packs it) of this format and size. Measured from an RGB
    source: lavfi's YUV sources round odd sizes down, which would misframe every odd-sized frame after."""
    out = run_tool(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"color=s={width}x{height}:d=1,format=rgb24",
         "-frames:v", "1", "-pix_fmt", pix_fmt, "-f", "rawvideo", "-"],
        what=f"cannot size a {pix_fmt} frame",
    )  # fmt: skip
    if not out:
        raise MediaError(f"ffmpeg gave no {pix_fmt} frame")
    return len(out)


class FramePipe:
    """Reads fixed-size raw frames from an ffmpeg process's stdout, checking it produced all of them."""

    def __init__(self, args: Sequence[str], frame_bytes: int, count: int, what: str, stderr_path: Path):
        self.frame_bytes, self.count, self.what = frame_bytes, count, what
        self.stderr_path = stderr_path
        # A file, not a pipe, so a chatty ffmpeg never blocks; closed in close().
        self._err = open(stderr_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [tool_path(args[0]), *args[1:]], stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL
        )

    def __iter__(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        try:
            for n in range(self.count):
                frame = self.proc.stdout.read(self.frame_bytes)
                if len(frame) != self.frame_bytes:
                    self.close()
                    raise MediaError(f"{self.what}: got {n} of {self.count} frames; {_tail(self.stderr_path)}")
                yield frame
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._err.close()


class TimedFramePipe(FramePipe):
    """A FramePipe over a decode whose graph ends in showinfo: yields (seconds or None, frame). showinfo logs
    a frame before ffmpeg writes it out, so its line is in the log file by the time the frame is read.
    `stream`: the video the frames must all be like (its size and pixel format, and one aspect ratio
    throughout; where it is coded progressive, no frame in fields after one that is not): ffmpeg would scale
    or convert a frame that is not, without a word, to the output's format, and the encoder would code it
    progressive."""

    def __init__(self, *args, stream: StreamFacts | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._log = open(self.stderr_path, "rb")  # noqa: SIM115 - closed in close()
        self._partial = b""
        self._lines: list[str] = []
        self._time_base: Fraction | None = None
        self._stream = stream
        self._first_sar: Fraction | None = None

    def __iter__(self) -> Iterator[tuple[float | None, bytes]]:  # type: ignore[override]
        for frame in super().__iter__():
            yield self._next_time(), frame

    def _next_time(self) -> float | None:
        waited = 0.0
        while True:
            while self._lines:
                line = self._lines.pop(0)
                kind, value = parse_showinfo_line(line, self._time_base)
                if kind == "time_base":
                    self._time_base = value  # type: ignore[assignment]
                elif kind == "time":
                    self._check_picture(line, value)  # type: ignore[arg-type]
                    return value  # type: ignore[return-value]
            chunk = self._log.read()
            if chunk:
                lines = (self._partial + chunk).split(b"\n")
                self._partial = lines.pop()
                self._lines = [line.decode("utf-8", "replace") for line in lines]
            elif waited > 10.0:  # never expected: the line comes before the frame
                return None
            else:
                time.sleep(0.001)
                waited += 0.001

    def _check_picture(self, line: str, seconds: float | None) -> None:
        """MediaError when the frame `line` describes is not of the stream's size and pixel format, or has
        another aspect ratio than the decode's first frame (a recording whose picture changes mid-way)."""
        picture = showinfo_picture(line)
        if self._stream is None or picture is None:
            return
        width, height, pix_fmt, sar, fields = picture
        if self._first_sar is None:
            self._first_sar = sar
        facts = self._stream
        # Flagged so from the file's first frame on (x264's fake interlacing: progressive pictures the decoder
        # flags as fields), the video is coded so throughout; else it turns interlaced mid-way.
        if facts.field_order is None and fields and facts.first_frame_fields not in ("tt", "bb"):
            at = f"at {seconds:.3f} s" if seconds is not None else "mid-way"
            raise MediaError(
                f"its picture turns interlaced {at} (coded in fields from there) where the video is progressive; "
                "one encode cannot keep both: split the file where it changes (ffmpeg -c copy with -ss/-to) "
                "and splice each part"
            )
        if (width, height, pix_fmt) != (facts.width, facts.height, facts.pix_fmt) or sar != self._first_sar:
            raise picture_change(seconds, (width, height, pix_fmt, sar), facts, self._first_sar)

    def close(self) -> None:
        super().close()
        self._log.close()


def picture_change(
    seconds: float | None, picture: tuple[int, int, str, Fraction], facts: StreamFacts, sar: Fraction
) -> MediaError:
    """The error for a frame at `seconds` whose (width, height, pixel format, aspect) is not the video's
    (`facts`, with aspect `sar`): a recording whose picture changes mid-way."""
    width, height, pix_fmt, aspect = picture
    at = f"at {seconds:.3f} s" if seconds is not None else "mid-way"
    return MediaError(
        f"its picture changes {at}: {width}x{height} {pix_fmt} (aspect {aspect}) where the video is "
        f"{facts.width}x{facts.height} {facts.pix_fmt} (aspect {sar}); one encode cannot keep both: split the "
        "file where it changes (ffmpeg -c copy with -ss/-to) and splice each part"
    )


def _tail(path: Path) -> str:
    """ffmpeg's last error line in a log (where it tags lines with their level, the last error-level one)."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no error output"
    tagged = [(m, ln) for ln in lines if (m := _LEVEL_TAG.search(ln)) is not None]
    if tagged:  # "[h264 @ 0x...] [error] no frame!": the error-level lines, without their tag
        lines = [ln[: m.start()] + ln[m.end() :] for m, ln in tagged if m[1] in ("error", "fatal", "panic")]
    return lines[-1] if lines else "no error output"


def decode_range(path: Path, facts: StreamFacts, seek_s: float | None, count: int, work: Path) -> TimedFramePipe:
    """Decode up to `count` frames of `path`'s video in the source's own pixel format and stored orientation,
    starting at the first frame at or after `seek_s` (seconds from the container start). Yields (time, frame):
    each frame's presentation time in seconds on the file's own clock (the decoder's; None where it gave
    none), so that a caller places frames by their time, not by their count (a decoder skips a damaged
    frame without a word)."""
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-noautorotate"]
    args += decoder_args(facts.decoder)
    if seek_s is not None and seek_s > 0:
        args += ["-ss", f"{seek_s:.6f}"]
    args += ["-copyts", "-i", str(path), "-map", f"0:{facts.index}", "-frames:v", str(count), *RAW_TIMING]
    args += ["-vf", "showinfo=checksum=0", "-an", "-sn", "-dn", "-f", "rawvideo", "-pix_fmt", facts.pix_fmt, "-"]
    size = raw_frame_bytes(facts.pix_fmt, facts.width, facts.height)
    what = f"cannot decode frames of {path}"
    return TimedFramePipe(args, size, count, what, work / f"decode-{id(args)}.log", stream=facts)


# How frames are converted between YUV and RGB: keys and source frames to RGB (media/video_frames.py), generated
# frames back (convert_images), chosen as a pair so that a frame taken there and back comes back unchanged.
# ffmpeg's default conversion truncates: an 8-bit frame came back about one luma code darker (mean -1.06 on
# a real 720p clip; a static shot's generated frames sat darker than their neighbours). With accurate
# rounding, chroma repeated to full size on the way to RGB and averaged back on the way to YUV, 95% of luma
# codes and 4:2:0 chroma at 58-62 dB come back (real 720p and 480p frames and testsrc2; bicubic both ways
# blurred the chroma to 53-54 dB). tests/test_splice_colour.py checks the round trip.
TO_RGB_SCALE_FLAGS = "neighbor+accurate_rnd+full_chroma_int"
TO_YUV_SCALE_FLAGS = "area+accurate_rnd+full_chroma_int"


# Deep YUV (9 to 16 bits) is turned into 16-bit RGB and back by zscale (libzimg, which computes in floating
# point), around a plain repeat (average) of the colour samples at the source's depth by swscale: ffmpeg 5.1's
# swscale scales the levels of deep YUV wrongly both ways. 10-bit limited-range white (Y 940, colour 512) came
# out as 65283 of 65535, mid-grey 502 as 32641 for 32768 (up to 255 codes, 0.4%, low over the whole range; 12-bit
# alike; full-range 10-bit 64 codes), and 16-bit generated white went back as Y 943, grey 32768 as 504 for 502.
# Through zscale both ways are exact to half a code (tests/test_deep_levels.py).
_DEEP_YUV_DEPTHS = (9, 10, 12, 14, 16)
_DEEP_YUVA_DEPTHS = (9, 10, 16)  # the depths of YUVA zscale takes; 12-bit alpha goes through 16 bits


def deep_yuv_planes(pix_fmt: str) -> tuple[str, str] | None:
    """(the full-colour planar YUV format at the source's depth that zscale takes, the planar 16-bit RGB format
    it turns it into) for a YUV or gray pixel format deeper than 8 bits (alpha kept; gray as YUV of neutral
    colour, so that its range is read: ffmpeg read 10-bit gray Y 940 as 60160, full range); None for any other
    format. 12- and 14-bit YUVA goes through 16 bits: widened by a shift, which limited-range levels are exact in."""
    if not pix_fmt.startswith(("yuv", "p0", "p2", "p4", "nv", "y2", "gray")):
        return None
    depth, alpha = pixel_format_facts(pix_fmt)
    if depth not in _DEEP_YUV_DEPTHS:
        return None
    if alpha:
        return f"yuva444p{depth if depth in _DEEP_YUVA_DEPTHS else 16}le", "gbrap16le"
    return f"yuv444p{depth}le", "gbrp16le"


def _zscale_matrix(color_space: str | None) -> str:
    """zscale's name of the matrix `rgb_to_yuv_matrix` chooses for this tag (the one swscale reads, too)."""
    return {"bt709": "709", "bt601": "470bg", "bt2020": "2020_ncl", "smpte240m": "smpte2400m", "fcc": "fcc"}[
        _yuv_matrix_of(color_space)
    ]


def _require_zscale(pix_fmt: str) -> None:
    if "zscale" not in ffmpeg_filters():
        raise MediaError(
            f"this ffmpeg has no zscale filter (libzimg), which {pix_fmt} frames need to be turned into RGB and back "
            "with their levels intact (its own scaler is up to 0.4% off at 10 bits); install an ffmpeg built with "
            "--enable-libzimg (Debian's is)"
        )


def exact_rgb_graph(pix_fmt: str, color_space: str | None, color_range: str | None) -> str:
    """Filters (a -vf graph's middle) that turn a frame of deep YUV (`deep_yuv_planes`) into planar 16-bit RGB
    by its matrix (`color_space`, as ffprobe names it) and range (full when tagged pc, else limited), colour
    samples repeated (TO_RGB_SCALE_FLAGS); "" for other formats, which swscale converts."""
    planes = deep_yuv_planes(pix_fmt)
    if planes is None:
        return ""
    _require_zscale(pix_fmt)
    full, rgb = planes
    pc = color_range == "pc"
    zscale = f"zscale=f=point:min={_zscale_matrix(color_space)}:rin={'full' if pc else 'limited'}:r=full"
    return f"scale=flags={TO_RGB_SCALE_FLAGS}:{_same_range(pc)},format={full},{zscale},format={rgb}"


def exact_yuv_graph(facts: StreamFacts) -> str:
    """Filters that turn RGB frames into the source's deep YUV pixel format (`deep_yuv_planes`), matrix and range
    as `exact_rgb_graph` reads them, colour samples averaged (TO_YUV_SCALE_FLAGS); "" for other formats."""
    planes = deep_yuv_planes(facts.pix_fmt)
    if planes is None:
        return ""
    _require_zscale(facts.pix_fmt)
    full, rgb = planes
    pc = full_range(facts)
    zscale = f"zscale=f=point:rin=full:m={_zscale_matrix(facts.color_space)}:r={'full' if pc else 'limited'}"
    colour = f"scale=flags={TO_YUV_SCALE_FLAGS}:{_same_range(pc)},format={facts.pix_fmt}"
    if facts.pix_fmt.startswith("gray"):
        # the luma plane as it is: swscale turned limited-range luma into gray as if gray were full range
        # (white 940 became 1020)
        colour = f"extractplanes=y,format={facts.pix_fmt}"
    return f"format={rgb},{zscale},format={full},{colour}"


def _same_range(pc: bool) -> str:
    """scale options that keep a YUV frame's range (full with `pc`, else limited): left to itself, swscale
    squeezed full-range 10-bit into limited while repeating its colour samples (white 1023 read as 60410)."""
    return "in_range=pc:out_range=pc" if pc else "in_range=tv:out_range=tv"


# Planar YUV formats whose colour is subsampled: name -> (log2 of the horizontal, vertical subsampling, the
# format of the same depth and planes with full-size colour, the format of one of its planes).
_SUBSAMPLING = {"420": (1, 1), "422": (1, 0), "440": (0, 1), "411": (2, 0), "410": (2, 2)}
_SUBSAMPLED = {
    f"{kind}{name}p{depth}": (*shift, f"{kind}444p{depth}", f"gray{depth}")
    for kind in ("yuv", "yuvj", "yuva")
    for name, shift in _SUBSAMPLING.items()
    for depth in ("", "9le", "10le", "12le", "14le", "16le", "9be", "10be", "12be", "14be", "16be")
}


def uneven_subsampling(pix_fmt: str, width: int, height: int) -> tuple[int, int, str] | None:
    """(pixels to add right, below, the full-colour format) when a frame of this format and size is not a whole
    number of subsampled colour samples across or down (an odd width in 4:2:0): ffmpeg 5.1 scales such a
    frame's colour by 161/321 instead of 1/2, both ways, so it drifted up to a pixel rightward (real content:
    4 codes off in the right third) and the last column came back 24 codes off. None for other frames."""
    found = _SUBSAMPLED.get(pix_fmt)
    if found is None:
        return None
    sx, sy, full, _ = found
    right, bottom = -width % (1 << sx), -height % (1 << sy)
    return (right, bottom, full) if right or bottom else None


def full_colour_graph(
    pix_fmt: str, width: int, height: int, color_space: str | None = None, color_range: str | None = None
) -> str:
    """Filters (a -vf graph's middle) that give a frame of an uneven size (uneven_subsampling) its colour at full
    size by repeating each sample exactly 2x (4x) and cropping, as TO_RGB_SCALE_FLAGS repeats it for even sizes;
    "" for other frames. The planes come back untagged: they are tagged again with the stream's matrix and
    range (`color_space`, `color_range`, as ffprobe names them), which the conversion to RGB reads."""
    uneven = uneven_subsampling(pix_fmt, width, height)
    if uneven is None:
        return ""
    right, bottom, full = uneven
    plane_format = _SUBSAMPLED[pix_fmt][3]
    planes = ["y", "u", "v", "a"][: 4 if pix_fmt.startswith("yuva") else 3]
    whole = f"{width + right}:{height + bottom}"
    graph = f"extractplanes={'+'.join(planes)}{''.join(f'[{p}]' for p in planes)};"
    # The planes are merged again only with one sample aspect (the stretched colour would have another); the
    # frames leave as raw pixels, which carry none.
    for p in planes:
        stretch = f"scale={whole}:flags=neighbor:in_range=pc:out_range=pc,format={plane_format}," if p in "uv" else ""
        stretch += f"crop={width}:{height}:0:0," if stretch else ""
        graph += f"[{p}]{stretch}setsar=1[{p}f];"
    inputs = "".join(f"[{p}f]" for p in planes)
    mapping = "0x" + "".join(f"{i}0" for i in range(len(planes)))
    tags = [f"{name}={value}" for name, value in (("colorspace", color_space), ("range", color_range)) if value]
    return f"{graph}{inputs}mergeplanes={mapping}:{full}" + (f",setparams={':'.join(tags)}" if tags else "")


def range_faithful_graph(pix_fmt: str, color_range: str | None) -> str:
    """Filters (a -vf graph's middle) that make the conversion of a frame to RGB read its range as
    convert_images writes it (full when tagged pc, else limited); "" where ffmpeg's own conversion does.
    ffmpeg 5.1 turns 8-bit gray into RGB by a lookup table that ignores the range, so limited-range levels
    were read as full and written back squeezed (generated frames came out as 0.85 x + 17). As yuv444p with
    neutral colour (a plane copy), the frame converts as any limited-range YUV frame does."""
    if pix_fmt != "gray" or color_range == "pc":
        return ""
    return "setparams=range=tv,format=yuv444p"


# Filters that turn a stored picture upright, by the clockwise degrees a player turns it, and back. Frames
# are turned while RGB, on both ways: ffmpeg's own turning (autorotate) runs on the decoded YUV, converting
# subsampled colour by its default flags first, so rotated 4:2:2 keys lost colour detail the upright ones kept.
UPRIGHT_FILTERS = {90: "transpose=clock", 180: "hflip,vflip", 270: "transpose=cclock"}
STORED_FILTERS = {90: "transpose=cclock", 180: "hflip,vflip", 270: "transpose=clock"}


def rgb_to_yuv_matrix(facts: StreamFacts) -> str:
    """The matrix that inverts how frames were turned into RGB (ffmpeg: the tagged matrix, else BT.601)."""
    return _yuv_matrix_of(facts.color_space)


def _yuv_matrix_of(color_space: str | None) -> str:
    """swscale's name of the matrix of frames tagged `color_space` (ffprobe's name): the tagged one, else BT.601."""
    return {
        "bt709": "bt709", "bt2020nc": "bt2020", "bt2020c": "bt2020", "smpte240m": "smpte240m",
        "fcc": "fcc", "bt470bg": "bt601", "smpte170m": "bt601",
    }.get(color_space or "", "bt601")  # fmt: skip


# 8-bit YUV formats with alpha, whose alpha convert_images takes straight from the images.
_ALPHA_KEPT_APART = frozenset({"yuva420p", "yuva422p", "yuva444p"})


# Palette frames (pal8: PNG, rawvideo, BMP...) each get a palette of their own colours, as a palette source's
# frames have: ffmpeg's plain conversion to pal8 maps every frame to one fixed palette, and generated frames
# came back at 21 dB with a third of the source's colours. Undithered, so a frame of at most 255 colours
# (one entry is kept for transparency) comes back exactly; alpha below half is transparent.
OWN_PALETTE_GRAPH = "split[pc][pp];[pp]palettegen=stats_mode=single[pal];[pc][pal]paletteuse=new=1:dither=none"


def full_range(facts: StreamFacts) -> bool:
    return facts.color_range == "pc" or facts.pix_fmt.startswith("yuvj")


def convert_images(images: Sequence[Path], facts: StreamFacts, work: Path) -> FramePipe:
    """Turn RGB image files (generated frames, display orientation, any size) into raw frames in the
    source's pixel format, matrix, range, size and stored orientation. Frames are turned to the stored
    orientation while still RGB, before their colour is subsampled: subsampled colour turned by 90 degrees
    afterwards would be subsampled along the other axis, and 4:2:2 lost half its horizontal colour detail."""
    listing = work / f"images-{id(images)}.txt"
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{_quote(p)}'\n" for p in images))
    rng = "pc" if full_range(facts) else "tv"
    chain = [STORED_FILTERS[facts.rotation]] if facts.rotation in STORED_FILTERS else []
    stored_size = f"w={facts.width}:h={facts.height}"
    matrix = f"flags={TO_YUV_SCALE_FLAGS}:out_color_matrix={rgb_to_yuv_matrix(facts)}:out_range={rng}"
    exact = exact_yuv_graph(facts)  # deep YUV: by zscale, not swscale's matrix
    uneven = uneven_subsampling(facts.pix_fmt, facts.width, facts.height)
    if uneven is not None:
        # Converted a little larger, the last column (row) repeated, and cropped back exactly: the subsampled
        # planes keep their rounded-up size (see uneven_subsampling).
        right, bottom, _ = uneven
        colour = f"scale={stored_size}:flags={TO_YUV_SCALE_FLAGS},pad={facts.width + right}:{facts.height + bottom}"
        to_yuv = exact or f"scale={matrix},format={facts.pix_fmt}"
        colour += f",fillborders=right={right}:bottom={bottom}:mode=smear,{to_yuv}"
        colour += f",crop={facts.width}:{facts.height}:0:0:exact=1"
    elif facts.pix_fmt == "pal8":
        colour = f"scale={stored_size}:flags={TO_YUV_SCALE_FLAGS},format=rgba,{OWN_PALETTE_GRAPH}"
    elif exact:
        colour = f"scale={stored_size}:flags={TO_YUV_SCALE_FLAGS},{exact}"
    else:
        colour = f"scale={stored_size}:{matrix},format={facts.pix_fmt}"
    if facts.pix_fmt in _ALPHA_KEPT_APART:
        # ffmpeg 5.1's conversion to 8-bit YUVA moved half the alpha values up by one (129 came back 130): the
        # alpha plane is taken from the image as it is.
        colour = f"split[c][a];[c]{colour}[cc];[a]alphaextract,scale={stored_size}:flags={TO_YUV_SCALE_FLAGS}[aa];"
        colour += "[cc][aa]alphamerge"
    graph = ",".join([*chain, colour])
    args = ["ffmpeg", "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing)]
    args += ["-vf", graph, "-fps_mode", "passthrough", "-frames:v", str(len(images))]
    args += ["-f", "rawvideo", "-pix_fmt", facts.pix_fmt, "-"]
    size = raw_frame_bytes(facts.pix_fmt, facts.width, facts.height)
    return FramePipe(args, size, len(images), "cannot convert generated frames", work / f"convert-{id(images)}.log")


def _quote(path: Path) -> str:
    return str(Path(path).resolve()).replace("'", "'\\''")


def pts_expression(pts: Sequence[int]) -> str:
    """An ffmpeg expression of N (frame number) giving pts[N]: piecewise-linear runs joined by a balanced
    if-tree, so constant-rate stretches stay short and any timing is exact."""
    values = [int(v) for v in pts]
    runs: list[tuple[int, int, int]] = []  # (first N, pts at first N, step)
    i = 0
    while i < len(values):
        step = values[i + 1] - values[i] if i + 1 < len(values) else 0
        j = i + 1
        while j + 1 < len(values) and values[j + 1] - values[j] == step:
            j += 1
        runs.append((i, values[i], step))
        i = j + 1

    def tree(lo: int, hi: int) -> str:
        if hi - lo == 1:
            first, start, step = runs[lo]
            return f"{start}+(N-{first})*{step}" if step else str(start)
        mid = (lo + hi) // 2
        return f"if(lt(N,{runs[mid][0]}),{tree(lo, mid)},{tree(mid, hi)})"

    return tree(0, len(runs)) if runs else "0"


def encode_frames(
    frames: Iterable[bytes],
    pts: Sequence[int],
    facts: StreamFacts,
    choice: EncoderChoice,
    out: Path,
    muxer: str,
    work: Path,
    origin: int = 0,
) -> None:
    """Encode raw frames (source pixel format and size) to `out`, frame k at pts[k] ticks of the source
    stream's time base, relative to the segment's start, which lies at `origin` ticks in the source."""
    tb = facts.time_base
    enc_tb = choice.time_base or tb
    exact = [Fraction(int(p) - int(pts[0])) * tb / enc_tb for p in pts] if pts else []
    grid = [round(x) for x in exact]
    # The encoder's clock may be coarser than the container's (1/30 s vs 1 ms): usable when every frame time,
    # from the segment's start, is that clock's tick rounded into the container's.
    if all(abs(x - g) * enc_tb <= tb / 2 for x, g in zip(exact, grid)):
        scaled = [g - grid[0] for g in grid]
    else:
        enc_tb, scaled = tb, [int(p) for p in pts]  # timing needs the stream's finer clock
    script = work / f"filter-{out.stem}.txt"
    chain = [f"settb={enc_tb.numerator}/{enc_tb.denominator}", f"setpts='{pts_expression(scaled)}'"]
    script.write_text(",".join([*chain, *choice.filters]))
    rate = facts.frame_rate
    args = [
        tool_path("ffmpeg"), "-nostdin", "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", facts.pix_fmt, "-s", f"{facts.width}x{facts.height}",
        "-r", f"{rate.numerator}/{rate.denominator}", *colour_args(facts), "-i", "-",
        "-filter_script:v", str(script), "-fps_mode", "passthrough",
        "-enc_time_base", f"{enc_tb.numerator}/{enc_tb.denominator}",
        "-c:v", choice.encoder, *choice.args, *choice.output_args, "-an", "-sn", "-dn", "-map_metadata", "-1",
    ]  # fmt: skip
    args += track_timescale_args(muxer, tb)
    args += ["-f", muxer, str(out)]
    log = work / f"encode-{out.stem}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        written = 0
        assert proc.stdin is not None
        try:
            for frame in frames:
                proc.stdin.write(frame)
                written += 1
        except BrokenPipeError:
            pass  # the encoder stopped early; its log says why
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            code = proc.wait()
    if code != 0 or written != len(pts):
        raise MediaError(f"cannot encode {out.name} with {choice.encoder}: {_tail(log)} ({written}/{len(pts)} frames)")


def track_timescale_args(muxer: str, time_base: Fraction) -> list[str]:
    """MP4/MOV options that keep a stream's clock (1/90000, 1001/30000 -> 1/30000) instead of the muxer's
    choice, so copied and re-encoded packets keep exact timestamps; no timecode track of their own. The movie
    clock is the stream's too: a stream that starts later than 0 starts after an empty edit, timed on the
    movie clock, whose default of 1/1000 s moved an MPEG-TS stream at 1.483333 s to 1.483 s."""
    if muxer not in ("mp4", "mov"):
        return []
    clock = str(time_base.denominator)
    return ["-video_track_timescale", clock, "-movie_timescale", clock, "-write_tmcd", "0"]
