"""Exact frames of a video: frame i is the i-th frame a sequential decode delivers (media/probe.py lists them),
read in one forward decode per batch of wanted frames, by their own times where the probe's times identify
them, else by their count from the start.

Frames come in `frame_layout(info)`: RGB or RGBA, uint8 for 8-bit sources and uint16 for deeper ones,
upright (display rotation applied)."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import tempfile
import threading
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path

import numpy as np

from semfi_batch.errors import FrameExtractError
from semfi_batch.media.frame_pipes import (
    TO_RGB_SCALE_FLAGS,
    UPRIGHT_FILTERS,
    exact_rgb_graph,
    full_colour_graph,
    range_faithful_graph,
)
from semfi_batch.media.probe import (
    SHOWINFO_POSITION_RE,
    VIDEO_STREAM_MAP,
    VideoInfo,
    parse_showinfo_line,
    showinfo_picture,
)
from semfi_batch.media.side_alpha import decoder_args
from semfi_batch.media.tools import tool_path

# A batch whose first frame lies at least this many frames into the video starts with a seek to an earlier
# keyframe (when the video's frame times allow the landing point to be verified); nearer ones decode from
# the start, which is always exact.
SEEK_MIN_FRAMES = 250
# Seek this far (in seconds) before the first wanted frame: ffmpeg lands on the keyframe at or before that
# time, and the frames from there to the wanted one are decoded and identified by their times.
SEEK_LEAD_S = 1.0


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
    decoder reports concealing, which it conceals from other pictures than a decode from the start has; those
    after the seek's decode failed).
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
    yield from _frames(info, wanted, deinterlace, single_thread=False)


def _frames(
    info: VideoInfo, wanted: list[int], deinterlace: bool, *, single_thread: bool
) -> Iterable[tuple[int, np.ndarray]]:
    """`iter_frames` of sorted, valid `wanted` frames: decoded by the codec's own threads, until the decoder
    reports concealing a damaged picture before a frame it delivers. Frame threads conceal a damaged picture
    from whatever their neighbours had decoded by then, differently from run to run (one of 42 runs of a
    damaged H.264 gave other pictures after the damage); that frame and those after it are then read by a
    decode on one thread (`single_thread`), which conceals it the same way every time. Frames before the
    damage are the same either way."""
    if not info.seekable:
        yield from _decode_counting(info, wanted, deinterlace, single_thread=single_thread)
        return
    missing = wanted
    seek = info.frame_time(wanted[0]) - SEEK_LEAD_S if wanted[0] >= SEEK_MIN_FRAMES else 0.0
    for start in [seek, None] if seek > 0 else [None]:
        got = set()
        try:
            for index, frame in _decode_by_time(info, missing, start, deinterlace, single_thread=single_thread):
                got.add(index)
                yield index, frame
        except _DamageMet:
            yield from _frames(info, [i for i in missing if i not in got], deinterlace, single_thread=True)
            return
        except _TimesOutOfOrder:
            if start is not None:
                missing = [i for i in missing if i not in got]
                continue
            # From the start, the frames delivered so far came in the probed order; after this point the
            # frames' times do not say which frame is which. The decode's own count does.
            rest = [i for i in missing if i not in got]
            yield from _decode_counting(info, rest, deinterlace, single_thread=single_thread)
            return
        except FrameExtractError:
            if start is None:
                raise
            # The decode after the seek failed (a damaged keyframe it landed on, which a decode from the start
            # conceals from the frames before it: ffmpeg once ended "Conversion failed!" there, in one run of
            # many, under load): the frames it did not deliver are read from the start, as any untrusted seek's.
            missing = [i for i in missing if i not in got]
            continue
        missing = [i for i in missing if i not in got]
        if not missing:
            return
    raise FrameExtractError(f"cannot decode frame {missing[0]} of {info.path}: the decoder delivered no such frame")


class _DamageMet(Exception):
    """A decode on the codec's threads reported concealing a damaged picture before the frame it was about to
    deliver: from there on its frames are read by a decode on one thread (`_frames`)."""


class _TimesOutOfOrder(Exception):
    """A decode delivered a frame whose time is not later than the one before it: from there on, the frames'
    times do not identify them (times edited out of order; a decoder stamping frames by decode times)."""


# bwdif, one frame out per frame in, before select (it needs the neighbouring frames).
_DEINTERLACE = "bwdif=mode=send_frame:parity=auto:deint=all,"


def _decode_counting(
    info: VideoInfo, wanted: list[int], deinterlace: bool, *, single_thread: bool = False
) -> Iterable[tuple[int, np.ndarray]]:
    """Decode from the start, keeping frames whose position in the decode (select's n) is wanted. On the
    codec's threads until damage is met (`_frames`), then on one thread from the start for the rest."""
    graph = (_DEINTERLACE if deinterlace else "") + f"select='{_select_expr('n', _runs(wanted))}'"
    concealed: list[int] = []
    frames = _decode(info, [], graph, len(wanted), concealed=concealed, counted=True, single_thread=single_thread)
    count = 0
    try:
        for index, frame in zip(wanted, frames, strict=False):
            if concealed[-1] and not single_thread:
                frames.close()
                yield from _decode_counting(info, wanted[count:], deinterlace, single_thread=True)
                return
            count += 1
            yield index, frame
    finally:
        frames.close()
    if count < len(wanted):
        raise FrameExtractError(
            f"cannot decode frame {wanted[count]} of {info.path}: the decode ended after {count} of "
            f"{len(wanted)} wanted frames"
        )


def _decode_by_time(
    info: VideoInfo, wanted: list[int], seek: float | None, deinterlace: bool = False, *, single_thread: bool = False
) -> Iterable[tuple[int, np.ndarray]]:
    """Decode from the start, or from the keyframe at or before `seek` (s from the container start), keep the
    frames whose time is a wanted frame's, and name each by its own time (showinfo, after select). Yields
    only frames it identified; _TimesOutOfOrder when a frame's time is not later than the one's before it;
    _DamageMet when, decoding on the codec's threads, the decoder reported concealing a damaged picture before
    a frame (`_frames`)."""
    ft = info.frame_times
    eps = info.time_tolerance
    # -copyts: filter times are the file's own, so the wanted times are the probed ones plus the container start.
    centres = [info.start_time + float(ft[i]) for i in wanted]
    windows = [(c - eps, c + eps) for c in centres]
    # The frame after the last wanted one passes too: its time, logged before select, confirms the last one's.
    select = f"if(gt(t,{windows[-1][1]!r}),1,{_select_expr('t', windows)})"
    if seek is not None:
        # The decode starts where the container's index says a keyframe is. Some indexes flag every frame (old
        # AVIs, an MP4 without its keyframe table), and the decoder then makes pictures from missing references,
        # with the right times. So the seek is trusted only when the first frame it delivers is a keyframe coded
        # intra (or of no stated type: decoders that give none). Else only that frame passes, to end the decode
        # (_OrderLog.first_intra_key says which it was); this decode is dropped and the frames are read from the
        # start.
        # Deinterlaced, the first frame is made without the frame before it, which a decode from the start has
        # (bwdif reads both neighbours): a seek that lands on a wanted keyframe (MPEG-TS lands at or after the
        # time asked for) must not take it; it is read from the start.
        trusted = f"gt(n,0)*({select})" if deinterlace else select
        select = f"if(eq(n,0),st(0,key*lte(pict_type,PICT_TYPE_I)));if(ld(0),{trusted},eq(n,0))"
    # Every decoded frame's time is logged before select too (_OrderLog): a frame is taken by its time only once
    # the frame decoded after it came later, and every frame before it in this decode came in order.
    graph = (_DEINTERLACE if deinterlace else "") + f"showinfo=checksum=0,select='{select}'"
    # -ss counts from the container start (ffmpeg adds the start time); -copyts keeps the file's own times.
    args = ["-noaccurate_seek", "-ss", f"{seek:.6f}", "-copyts"] if seek is not None else ["-copyts"]
    times: list[float] = []
    concealed: list[int] = []
    order = _OrderLog(f"Parsed_showinfo_{1 if deinterlace else 0}", info)  # ffmpeg names the filters of -vf so
    frames = _decode(
        info, args, graph, len(wanted) + 1, times=times, concealed=concealed, order=order, single_thread=single_thread
    )
    expected = set(wanted)
    try:
        for frame in frames:
            if not expected:
                return  # the frame after the last wanted one
            if seek is not None and not order.first_intra_key:
                # The seek landed on a frame the decoder does not call an intra keyframe: that frame is no wanted
                # one even where its time is (MPEG-TS lands at or after the time asked for, and a stream refreshed
                # by stripes has its recovery points flagged keyframes: the first frame shown after one was still
                # partly made from missing pictures, 255 levels off, exit 0).
                return
            if concealed[-1] and not single_thread:
                raise _DamageMet  # read on one thread from here (a decode from the start would meet it too)
            if seek is not None and concealed[-1]:
                # A damaged picture met after the seek (the keyframe it landed on, or one before this frame) was
                # concealed from other pictures than in a decode from the start: trust nothing more from it.
                return
            stamp = times[-1] - info.start_time if times else float("nan")
            k = int(np.searchsorted(ft, stamp - eps))
            if not (k < ft.shape[0] and abs(float(ft[k]) - stamp) <= eps and k in expected):
                # In order, and not a wanted frame where the probe says it is: a seek that landed on a frame the
                # decoder does not call a keyframe, or the frame after a wanted one the decoder skipped (a
                # damaged frame keeps its number: no other frame is taken for it). Trust nothing more from it.
                return
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
    order: _OrderLog | None = None,
    single_thread: bool = False,
) -> Generator[np.ndarray, None, None]:
    """Run one ffmpeg decode of the first video stream through `graph` and yield up to `count` raw frames in
    `frame_layout(info)`. With `times`, showinfo's time of each frame is appended before it is yielded; with
    `concealed`, how many pictures the decoder had reported concealing before that frame's time (it reports
    a damaged picture while decoding it, before the filters see it). With `order` (`graph` holds a showinfo
    before its select, named by `order`), each frame is yielded only when the frame decoded after it (or the
    end of the decode) has been logged, and _TimesOutOfOrder is raised instead when a frame decoded up to then
    came with a time not later than the one before it.
    FrameExtractError for a frame of another size than the probe's (ffmpeg would scale it to the first size),
    and, when `graph` selects frames by their count (`counted`), for a decode whose filters ffmpeg set up
    again mid-way (a change of size or pixel format): the count starts again from zero there.
    `single_thread`: the decoder runs on one thread (the filters keep theirs)."""
    pix_fmt, dtype, channels = frame_layout(info)
    width, height = info.display_size
    frame_bytes = width * height * channels * dtype.itemsize
    graph += ",showinfo=checksum=0"  # each frame's time and size as decoded, before any scaling to the output
    full_colour = full_colour_graph(info.pix_fmt, info.width, info.height, info.color_space, info.color_range)
    graph += f",{full_colour}" if full_colour else ""
    range_faithful = range_faithful_graph(info.pix_fmt, info.color_range)
    graph += f",{range_faithful}" if range_faithful else ""
    exact = exact_rgb_graph(info.pix_fmt, info.color_space, info.color_range)  # deep YUV: by zscale
    graph += f",{exact}" if exact else ""
    graph += f",scale=flags={TO_RGB_SCALE_FLAGS},format={pix_fmt}"  # by the frame's tagged matrix and range
    # Turned upright here, once RGB (frame_pipes.UPRIGHT_FILTERS); a turn other than a quarter is ffmpeg's.
    turn = UPRIGHT_FILTERS.get(round(-info.rotation) % 360)
    logged_size = (info.width, info.height) if turn else (width, height)  # the size showinfo sees
    graph += f",{turn}" if turn else ""
    script = None
    cmd = [tool_path("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]
    cmd += ["-noautorotate"] if turn else []
    cmd += ["-threads", "1"] if single_thread else []  # before -i: the decoder's
    cmd += [*decoder_args(info.decoder), *input_args, "-i", str(info.path), "-map", VIDEO_STREAM_MAP]
    cmd += ["-an", "-sn", "-dn", "-fps_mode", "passthrough"]
    if len(graph) > 20_000:  # beyond what one argument should carry
        script = _write_script(graph)
        cmd += ["-filter_script:v", str(script)]
    else:
        cmd += ["-vf", graph]
    cmd += ["-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    stamps = _TimeLog()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
    log = _StderrReader(proc, stamps, order)
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
            stamp, size, setups, concealed_before, decoded = stamps.next()
            if size is not None and size != logged_size:
                raise FrameExtractError(
                    f"cannot read frames of {info.path}: its frames change size mid-way ({size[0]}x{size[1]} "
                    f"after {logged_size[0]}x{logged_size[1]} at the start); split it where the size changes"
                )
            if counted and setups > 1:
                raise _changes_format(info)
            if times is not None:
                times.append(stamp)
            if concealed is not None:
                concealed.append(concealed_before)
            if order is not None:
                if decoded == 0:  # the graph's first showinfo is not the one `order` names
                    raise RuntimeError(f"no frame logged by {order.prefix}...] before select")
                if not order.in_order_through(decoded):
                    raise _TimesOutOfOrder
            delivered += 1
            frame = np.frombuffer(data, dtype).reshape(height, width, channels).astype(dtype.newbyteorder("="))
            if channels == 4 and 8 < info.bit_depth < 16:
                frame[..., 3] = full_scale_alpha(frame[..., 3], info.bit_depth)
            yield frame
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


def full_scale_alpha(alpha: np.ndarray, depth: int) -> np.ndarray:
    """16-bit alpha that ffmpeg widened from `depth` bits, scaled so that the source's full alpha is 65535: ffmpeg
    5.1 widens alpha by a shift (10-bit 1023 became 65472, 12-bit 4095 65520), so opaque keys had partial alpha
    and were interpolated premultiplied. The source's value is the top `depth` bits whether ffmpeg shifted it or
    scaled it; it is scaled by 65535 / (2^depth - 1), rounded."""
    top = (1 << depth) - 1
    source = alpha.astype(np.uint32) >> (16 - depth)
    return ((source * 65535 + top // 2) // top).astype(np.uint16)


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
    decoder had reported concealing, how many frames the _OrderLog had logged) from showinfo lines, handed
    over in order (blocking until the next one is logged; NaN, None, 0, 0, 0 when the log ended first)."""

    def __init__(self) -> None:
        self.items: queue.Queue[tuple[float | None, tuple[int, int] | None, int, int, int] | None] = queue.Queue()
        self.ended = False

    def next(self) -> tuple[float, tuple[int, int] | None, int, int, int]:
        item = None if self.ended else self.items.get(timeout=60)
        if item is None:
            self.ended = True
            return float("nan"), None, 0, 0, 0
        stamp, size, setups, concealed, decoded = item
        return (float("nan") if stamp is None else stamp), size, setups, concealed, decoded


class _OrderLog:
    """The times of every frame a decode delivers, from a showinfo before select (`instance`: its name in
    ffmpeg's log), as far as they go in order: `disordered_at` is the position of the first frame whose time
    is not later than the one's before it, or is not the time of the packet it came from (showinfo's pos;
    VideoInfo.packet_positions): a decoder that stamps frames with their decode times once their packets'
    times went out of order; an AVI demuxer that counts frames for times from where a seek put it (after a
    damaged chunk, one frame off the count from the start). None while there is none."""

    def __init__(self, instance: str, info: VideoInfo) -> None:
        self.prefix = f"[{instance} @"
        self._info, self._eps = info, info.time_tolerance  # (per frame below: worked out once)
        self.decoded = 0
        self.first_intra_key = False  # whether the decoder calls the first frame a keyframe coded intra (or untyped)
        self.disordered_at: int | None = None
        self.ended = False
        self._time_base = None
        self._last: float | None = None
        self._changed = threading.Condition()

    def log(self, line: str) -> None:
        kind, value = parse_showinfo_line(line, self._time_base)
        if kind == "time_base":
            self._time_base = value
        elif kind == "time":
            with self._changed:
                if value is not None:
                    back = self._last is not None and value <= self._last
                    if (back or not self._packet_time(line, value)) and self.disordered_at is None:
                        self.disordered_at = self.decoded
                    self._last = value
                if self.decoded == 0:
                    self.first_intra_key = _INTRA_KEY_RE.search(line) is not None
                self.decoded += 1
                self._changed.notify_all()

    def _packet_time(self, line: str, stamp: float) -> bool:
        """False when the frame's packet (by its position) has another time than `stamp` (s, the file's own)."""
        found = SHOWINFO_POSITION_RE.search(line) if self._info.packet_positions is not None else None
        own = self._info.packet_time(int(found[1])) if found is not None else None
        if own is None:
            return True  # no packet starts there (a position the demuxer does not give): nothing to compare
        return abs(own + self._info.start_time - stamp) <= self._eps

    def end(self) -> None:
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def in_order_through(self, decoded: int) -> bool:
        """Whether the first `decoded` frames and the one after them (once logged, or the decode ended) came
        in order."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.decoded > decoded or self.ended, timeout=600):
                raise FrameExtractError("ffmpeg logged no frame for 10 minutes while decoding (stalled?)")
            return self.disordered_at is None or self.disordered_at > decoded


# A frame showinfo logs as a keyframe coded intra, or of no stated type (decoders that give none): what the select
# of a decode after a seek tests with key*lte(pict_type,PICT_TYPE_I).
_INTRA_KEY_RE = re.compile(r"\biskey:1 type:[I?]")

# libavcodec's error resilience (H.264, MPEG-1/2/4, H.263 and their kin) reports each damaged picture it
# conceals so; decoders without it (HEVC, VP9, AV1) say nothing comparable, but ffmpeg reports the packets they
# fail on (whose damage their frame threads then pass on to other pictures, by how many threads there are).
_CONCEALED_RE = re.compile(r"concealing \d+ DC, \d+ AC, \d+ MV errors|Error while decoding stream #")


class _StderrReader:
    """Reads ffmpeg's log on a thread: showinfo's frame times and sizes go to `stamps`, the rest is kept for
    error messages. `setups`: how many times showinfo was configured (more than once: ffmpeg set the filters
    up again for frames of another size or pixel format); `concealed`: how many damaged pictures the decoder
    reported concealing, or packets ffmpeg reported it failed on."""

    def __init__(self, proc: subprocess.Popen, stamps: _TimeLog, order: _OrderLog | None = None):
        self.proc, self.stamps, self.order = proc, stamps, order
        self.setups = 0
        self.concealed = 0
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        time_base = None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            # (before anything else: a decoder thread's message can land inside a showinfo line)
            self.concealed += _CONCEALED_RE.search(line) is not None
            if self.order is not None and line.startswith(self.order.prefix):
                self.order.log(line)
                continue
            if "showinfo" in line:
                kind, value = parse_showinfo_line(line, time_base)
                if kind == "time_base":
                    time_base = value
                    self.setups += 1
                elif kind == "time":
                    picture = showinfo_picture(line)
                    frame_size = picture[:2] if picture else None
                    decoded = self.order.decoded if self.order is not None else 0
                    self.stamps.items.put((value, frame_size, self.setups, self.concealed, decoded))
                continue
            if line.strip():
                self.lines.append(line.strip())
                del self.lines[:-20]
        self.stamps.items.put(None)
        if self.order is not None:
            self.order.end()

    def join(self) -> None:
        self.thread.join(timeout=10)
        self.proc.stderr.close()

    def last_error(self) -> str:
        errs = [ln for ln in self.lines if not ln.startswith(("Input #", "Output #", "Stream", "Metadata"))]
        return (errs or self.lines or ["ffmpeg failed"])[-1]
