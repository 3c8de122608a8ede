"""Probing videos: stream facts and the exact list of frames a sequential decode delivers.

Frame i of a video is the i-th frame ffmpeg's decoder delivers, in presentation order (`-fps_mode passthrough`):
that is the numbering `detect` writes and `extract_frames` reads. The packet list says the same thing, and is
read without decoding, only for containers and codecs where one packet is one frame with its own presentation
time (MP4/MOV, Matroska/WebM with modern codecs, progressive), and only when the decoder's first frame is the
first packet's (a stream cut before its first keyframe or inside an open GOP lists frames the decoder drops).
Everywhere else (AVI, where packets carry no presentation times and DivX packs two frames into one packet
followed by an empty N-VOP; MPEG-TS/PS; MXF; MPEG-1/2/4 Part 2; field-coded video; empty "repeat" chunks in
sparse AVIs), the list comes from one decode. Where a container states no field order (AVI, raw DV), the
decoder's flags on the first frame give it.

The packet list is checked against the decoder's first frames (LISTING_CHECK_FRAMES of them): the first must
be the first packet's, and each must come in order with its own packet's time (found by the packet's byte
position). A file whose packets' times are not the times the decoder delivers frames with (B-frames muxed
without their composition offsets, times edited out of order) is listed by a decode instead; a packet the
decoder skips (a damaged frame) does not change the list."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from semfi_batch.errors import MediaError, VideoOpenFailure
from semfi_batch.media.side_alpha import stream_decoding
from semfi_batch.media.tools import run_tool, tool_path

# Containers whose packets carry presentation times one frame each (ffprobe's format_name parts).
_PACKET_EXACT_FORMATS = {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"}
# Codecs whose packets are whole frames (no field pairs, no packed frames, no empty repeat packets).
_PACKET_EXACT_CODECS = {
    "h264", "hevc", "vp8", "vp9", "av1", "prores", "dnxhd", "ffv1", "mjpeg", "png", "qtrle", "rawvideo",
    "utvideo", "huffyuv", "ffvhuff", "magicyuv", "cfhd", "theora",
}  # fmt: skip
PROGRESSIVE = "progressive"
# ffmpeg's -map of the stream every decode reads: the first video stream that is not a cover picture (capital V
# leaves out attached pictures, as `_is_cover` does), the one `probe_video` describes. "0:v:0" took a cover
# listed first (an MP4 whose udta box comes before its tracks) for the video: frame 0 was the cover, exit 0.
VIDEO_STREAM_MAP = "0:V:0"
# How many of the decoder's first frames must come with their packets' times for the packet list to be taken:
# enough to cover the deepest B-frame reordering (16), whose loss shows from the second frame on.
LISTING_CHECK_FRAMES = 24


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video's first video stream. `frame_times` are presentation timestamps in seconds of every
    frame a sequential decode delivers, in that order, relative to the container start (what ffmpeg's `-ss`
    counts from); NaN where the decoder gave a frame no time.

    `width`/`height` are the stored size; `rotation` is the display rotation (ffprobe's, degrees) and
    `display_size` the size frames are read at (a player's orientation: generated frames are made upright).
    `bit_depth` is the deepest component of the source's pixel format and `has_alpha` whether it carries
    alpha: frames are read at 8 bits when bit_depth is 8, else at 16. `decoder` is the decoder its pixels must
    be read with, when ffmpeg's default would drop its alpha (media/side_alpha.py). `field_order` is ffprobe's
    (progressive, tt, bb, tb, bt, or unknown). `seekable` is True when the frame times are strictly
    increasing and came with every packet, so a frame landed on after a seek can be identified by its time."""

    path: Path
    width: int
    height: int
    codec: str
    pix_fmt: str
    avg_fps: float
    time_base: Fraction
    start_time: float
    duration: float
    has_audio: bool
    frame_times: np.ndarray
    bit_depth: int = 8
    has_alpha: bool = False
    field_order: str = PROGRESSIVE
    rotation: int = 0
    seekable: bool = True
    frames_from: str = "packets"  # how frame_times were listed: "packets" or "decode"
    decoder: str | None = None
    # The stream's colour matrix and range as ffprobe names them (None: not said), for a decode that rebuilds
    # the frames' planes (frame_pipes.full_colour_graph), which leaves them untagged.
    color_space: str | None = None
    color_range: str | None = None
    timecode: str | None = None  # the start timecode (start_timecode), HH:MM:SS:FF or HH:MM:SS;FF
    # Each packet's byte position in the file and its presentation time (s from the container start), sorted
    # by position: what a decoded frame's time must be, found by the position of the packet it came from
    # (showinfo's pos). Where a decode lists the frames, the times that decode gave each packet's frame
    # (packets that gave no frame, or several, are left out): a demuxer that counts frames for times, as
    # AVI's does, can stamp a packet otherwise after a seek than in a read from the start.
    packet_positions: np.ndarray | None = None
    packet_times: np.ndarray | None = None
    # How many frames at the start the decoder made from pictures the file does not hold: frames whose packets
    # come before the stream's first keyframe (a stream cut inside a GOP, as a recording of a broadcast starts).
    # ffmpeg's H.264 and MPEG-2 decoders deliver none of those; its HEVC decoder delivers them, made from
    # missing references (grey smears). They keep their numbers; detect takes no key from them.
    made_without_references: int = 0

    def packet_time(self, position: int) -> float | None:
        """The time (s from the container start) of the packet at byte `position` (packet_positions); None
        where no packet listed there starts."""
        if self.packet_positions is None:
            return None
        return packet_time_at(self.packet_positions, self.packet_times, position)

    @property
    def time_tolerance(self) -> float:
        """How far a decoded frame's time may be from a listed one and still be that frame (`time_tolerance`)."""
        return time_tolerance(self.frame_times)

    @property
    def frame_count(self) -> int:
        return int(self.frame_times.shape[0])

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after the display rotation: the size of extracted frames."""
        return (self.height, self.width) if abs(self.rotation) % 180 == 90 else (self.width, self.height)

    @property
    def interlaced(self) -> bool:
        """True for field-coded sources with a known field order."""
        return self.field_order in ("tt", "bb", "tb", "bt")

    @property
    def top_field_first(self) -> bool:
        """For interlaced sources: whether the top field is the earlier one (tt, tb)."""
        return self.field_order in ("tt", "tb")

    def frame_time(self, index: int) -> float:
        """Timestamp (s) of frame `index` relative to the container start."""
        return float(self.frame_times[index])


@dataclass(frozen=True)
class RateAndFieldOrder:
    """What a job needs of its source besides the frames themselves, read without listing frames (which for
    some formats means decoding the whole file): the first video stream's rate and field order."""

    avg_fps: float
    field_order: str

    @property
    def interlaced(self) -> bool:
        return self.field_order in ("tt", "bb", "tb", "bt")


def probe_stream(path: Path) -> RateAndFieldOrder:
    """The rate and field order of `path`'s first video stream (one quick ffprobe, cached per path, size and
    mtime). VideoOpenFailure when unreadable."""
    return _stream_cached(*_file_version(path))


def stream_has_alpha(path: Path) -> bool:
    """Whether `path`'s first video stream carries alpha, as `probe_video`'s `has_alpha` says it (its pixel
    format as its frames are read, VP8/VP9 alpha beside the picture included), from `probe_stream`'s quick
    ffprobe (the same one, cached): job planning asks it of every source. VideoOpenFailure when unreadable;
    MediaError where this ffmpeg cannot read the alpha (media/side_alpha.py)."""
    path, size, mtime_ns = _file_version(path)
    return pixel_format_facts(stream_decoding(_first_video_stream(path, size, mtime_ns), path)[1])[1]


def _file_version(path: Path) -> tuple[Path, int, int]:
    """(`path` resolved, its size, its mtime in ns): what the quick probes are cached by."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise VideoOpenFailure(f"cannot open video {path}: {exc.strerror or exc}") from None
    return path.resolve(), st.st_size, st.st_mtime_ns


@lru_cache(maxsize=256)
def _stream_cached(path: Path, size: int, mtime_ns: int) -> RateAndFieldOrder:
    video = _first_video_stream(path, size, mtime_ns)
    field_order = field_order_of(video.get("field_order"), lambda: decoded_field_order(path))
    return RateAndFieldOrder(avg_fps=_stream_rate(video), field_order=field_order)


@lru_cache(maxsize=256)
def _first_video_stream(path: Path, _size: int, _mtime_ns: int) -> dict:
    """ffprobe's dict of `path`'s first video stream that is not cover art (shared: not to be changed)."""
    try:
        meta = _ffprobe_json(path, "-show_streams")
    except MediaError as exc:
        raise VideoOpenFailure(str(exc)) from None
    video = next((s for s in meta.get("streams", []) if s.get("codec_type") == "video" and not _is_cover(s)), None)
    if video is None:
        raise VideoOpenFailure(f"{path} has no video stream")
    return video


def _stream_rate(video: dict) -> float:
    return _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")) or 0.0


def _ffprobe_json(path: Path, *args: str) -> dict:
    out = run_tool(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        what=f"cannot read video {path}",
    )
    return json.loads(out or b"{}")


def first_frames(path: Path, index: int, count: int, entries: str, what: str) -> list[dict]:
    """ffprobe's `entries` (e.g. "frame=pts_time") of the first `count` decoded frames of stream `index`
    (absolute); MediaError saying `what` could not be read."""
    out = run_tool(
        ["ffprobe", "-v", "error", "-select_streams", str(index), "-read_intervals", f"%+#{count}", "-show_frames",
         "-show_entries", entries, "-of", "json", str(path)],
        what=what,
    )  # fmt: skip
    return json.loads(out or b"{}").get("frames") or []


def probe_video(path: Path) -> VideoInfo:
    """Probe `path` (cached per path, size and mtime). Raises VideoOpenFailure for unreadable files or
    files without a video stream."""
    path = Path(path)
    st = video_file_stat(path)
    return _probe_cached(path.resolve(), st.st_size, st.st_mtime_ns)


def video_file_stat(path: Path) -> os.stat_result:
    """`path`'s stat; VideoOpenFailure when it cannot be read or is not a regular file (a pipe or a device
    would be read until it ends, maybe never)."""
    sequence = (
        "image sequences are not read as sources: give a video file (a folder of keyframes becomes image-pair "
        "rows with `semfi-batch manifest from-images`)"
    )
    try:
        st = Path(path).stat()
    except OSError as exc:
        if re.search(r"%0?\d*d|#", Path(path).name):  # ffmpeg's dpx/%04d.dpx, a compositor's shot.####.exr
            raise VideoOpenFailure(f"cannot open video {path}: it names an image sequence; {sequence}") from None
        raise VideoOpenFailure(f"cannot open video {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoOpenFailure(f"cannot open video {path}: it is a folder; {sequence}")
    if not stat.S_ISREG(st.st_mode):
        raise VideoOpenFailure(f"cannot open video {path}: it is not a regular file")
    return st


@lru_cache(maxsize=64)
def _probe_cached(path: Path, _size: int, _mtime_ns: int) -> VideoInfo:
    with ThreadPoolExecutor(1) as pool:
        # The first frames the decoder delivers, found while ffprobe lists the packets (the packets are the
        # frames only when the decoder delivers the first of them with their times).
        first_decoded = pool.submit(first_decoded_frames, path, LISTING_CHECK_FRAMES)
        try:
            # One ffprobe call for streams, format and every packet's timestamps (half the start-up of two calls).
            meta = _ffprobe_json(
                path,
                "-show_format",
                "-show_streams",
                "-show_entries",
                "packet=stream_index,pts_time,dts_time,flags,size,pos",
            )
        except MediaError as exc:
            raise VideoOpenFailure(str(exc)) from None
        return _video_info(path, meta, first_decoded)


def _video_info(path: Path, meta: dict, first_decoded: Future) -> VideoInfo:
    streams = meta.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover(s)), None)
    if video is None:
        raise VideoOpenFailure(f"{path} has no video stream")
    fmt = meta.get("format", {})
    container_start = float(fmt.get("start_time", 0.0) or 0.0)
    packets = [p for p in meta.get("packets", []) if p.get("stream_index") == video["index"]]
    if not packets:
        raise VideoOpenFailure(f"{path} has a video stream but no decodable frames")
    codec = str(video.get("codec_name", ""))
    field_order = field_order_of(video.get("field_order"), lambda: _decoded_fields(first_decoded))
    every_pts = all(p.get("pts_time") not in (None, "N/A") for p in packets)
    formats = set(str(fmt.get("format_name", "")).split(","))
    packet_exact = (
        bool(formats & _PACKET_EXACT_FORMATS)
        and codec in _PACKET_EXACT_CODECS
        and field_order in (PROGRESSIVE, "unknown")
        and every_pts
        and all(int(p.get("size", 1) or 0) > 0 for p in packets)
    )
    if packet_exact:
        times = [float(p["pts_time"]) for p in packets if "D" not in p.get("flags", "")]  # D: cut by an edit list
        frame_times = np.sort(np.asarray(times, dtype=np.float64)) - container_start
        frames_from = "packets"
        by_position = _packet_times(packets, container_start)
    if packet_exact and (
        frame_times.size == 0 or not _decodes_as_listed(first_decoded, container_start, frame_times, by_position)
    ):
        # The decoder does not deliver the listed packets from the first, at their times: a stream cut before
        # its first keyframe, the leading pictures of an open GOP at its start, B-frames whose composition
        # offsets were lost, times edited out of order. The frames are the ones it delivers.
        packet_exact = False
    frame_positions: list[int] = []  # the packet position of each frame, in frame order (-1: not known)
    if not packet_exact:
        frame_times = decoded_frame_times(path, frame_positions) - container_start
        frames_from = "decode"
        by_position = _decoded_packet_times(frame_positions, frame_times)
    else:
        at = {float(t): int(p) for p, t in zip(by_position["packet_positions"], by_position["packet_times"])}
        frame_positions = [at.get(float(t), -1) for t in frame_times]
    if frame_times.size == 0:
        raise VideoOpenFailure(f"{path} has a video stream but no decodable frames")
    steps = np.diff(frame_times)
    seekable = bool(every_pts and not np.isnan(frame_times).any() and (steps > 0).all())
    decoder, pix_fmt = stream_decoding(video, path)
    depth, alpha = pixel_format_facts(pix_fmt)
    refuse_mirrored_display(video, path)
    return VideoInfo(
        path=path,
        width=int(video["width"]),
        height=int(video["height"]),
        codec=codec,
        pix_fmt=pix_fmt,
        avg_fps=_stream_rate(video),
        time_base=Fraction(video.get("time_base", "1/1")),
        start_time=container_start,
        duration=float(fmt.get("duration", 0.0) or 0.0),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        frame_times=frame_times,
        bit_depth=depth,
        has_alpha=alpha,
        field_order=field_order,
        rotation=_rotation(video),
        seekable=seekable,
        frames_from=frames_from,
        **by_position,
        made_without_references=_frames_before_first_keyframe(packets, frame_positions),
        decoder=decoder,
        color_space=_said(video.get("color_space")),
        color_range=_said(video.get("color_range")),
        timecode=start_timecode(streams, fmt),
    )


def _frames_before_first_keyframe(packets: list[dict], frame_positions: list[int]) -> int:
    """How many frames at the start came from packets before the first packet the container flags a keyframe
    (by byte position; `frame_positions`: each frame's packet position, -1 where not known)."""
    position = next((str(p.get("pos", "")) for p in packets if "K" in p.get("flags", "")), "")
    first_key = int(position) if position.isdigit() else None  # (none, or its position not given: no count)
    count = 0
    for position in frame_positions:
        if first_key is None or not 0 <= position < first_key:
            break
        count += 1
    return count


def _said(value) -> str | None:
    """An ffprobe colour field, None where the stream does not say."""
    return str(value) if value not in (None, "", "unknown", "unspecified") else None


def start_timecode(streams: list[dict], fmt: dict) -> str | None:
    """The start timecode in ffprobe's stream and format listing, wherever the container keeps it (the video
    stream, a tmcd data stream, the file's tags). Tag names are matched whatever their case: Matroska keeps
    the start as `TIMECODE`, QuickTime and MXF as `timecode`."""
    for tags in [s.get("tags") or {} for s in streams] + [fmt.get("tags") or {}]:
        for name, value in tags.items():
            if name.lower() == "timecode" and value:
                return str(value)
    return None


def time_tolerance(frame_times: np.ndarray) -> float:
    """How far a decoded frame's time (s) may be from one of `frame_times` and still be that frame: a quarter
    of the shortest interval between them, at most 1 ms."""
    steps = np.diff(frame_times)
    return min(1e-3, 0.25 * float(steps.min())) if steps.size else 1e-3


def packet_time_at(positions: np.ndarray, times: np.ndarray, position: int) -> float | None:
    """`times[i]` where `positions[i]` is `position` (`positions` sorted: _packet_times's arrays); None where no
    packet starts there."""
    at = int(np.searchsorted(positions, position))
    return float(times[at]) if position >= 0 and at < positions.shape[0] and positions[at] == position else None


def _packet_times(packets: list[dict], container_start: float) -> dict[str, np.ndarray]:
    """VideoInfo's packet_positions and packet_times, from ffprobe's packet list (packets without a position
    left out)."""
    known = [(int(p["pos"]), float(p["pts_time"])) for p in packets if str(p.get("pos", "N/A")).isdigit()]
    table = np.asarray(sorted(known), dtype=np.float64).reshape(-1, 2)
    return {"packet_positions": table[:, 0].astype(np.int64), "packet_times": table[:, 1] - container_start}


def _decoded_packet_times(frame_positions: list[int], frame_times: np.ndarray) -> dict[str, np.ndarray]:
    """VideoInfo's packet_positions and packet_times where a decode lists the frames: each packet's position
    and the time of the one frame the decode delivered from it (s from the container start), sorted by
    position. Positions the decoder gave no frame, or several frames (DivX packed B-frames), are left out."""
    counts: dict[int, int] = {}
    for position in frame_positions:
        counts[position] = counts.get(position, 0) + 1
    known = [
        (position, float(t))
        for position, t in zip(frame_positions, frame_times)
        if position >= 0 and counts[position] == 1 and not np.isnan(t)
    ]
    table = np.asarray(sorted(known), dtype=np.float64).reshape(-1, 2)
    return {"packet_positions": table[:, 0].astype(np.int64), "packet_times": table[:, 1]}


_CONFIG_RE = re.compile(r"config in time_base: (\d+)/(\d+)")
_SHOWINFO_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(\S+)")
_PICTURE_RE = re.compile(r"\bfmt:(\S+)\s+sar:(\d+)/(\d+)\s+s:(\d+)x(\d+)(?:\s+i:([PTB]))?")


def decoded_frame_times(path: Path, positions: list[int] | None = None) -> np.ndarray:
    """Presentation times (s, the file's own: -copyts) of every frame ffmpeg decodes from the first video
    stream, in delivery order: the same decode, options and timestamps `extract_frames` uses. NaN for a frame
    delivered without a time. (Without -copyts ffmpeg shifts them by a start it picks itself, which is not
    the container start when the audio starts first, as in many transport streams.) With `positions`, each
    frame's packet position is appended to it (-1 where none is given)."""
    return parse_showinfo_times(_showinfo_decode(path), positions)


def first_decoded_frame(path: Path) -> tuple[float | None, str]:
    """(time, field order) of the first frame ffmpeg decodes from the first video stream: its time as
    `decoded_frame_times` gives it (None without one), and whether the decoder calls it interlaced, top or
    bottom field first ("tt", "bb", "progressive", or "unknown")."""
    times, _, fields = first_decoded_frames(path, 1)
    return (float(times[0]) if times.size and not np.isnan(times[0]) else None), fields


def first_decoded_frames(path: Path, count: int) -> tuple[np.ndarray, list[int], str]:
    """(times, packet positions, field order) of the first `count` frames ffmpeg decodes from the first video
    stream (fewer when it has fewer): their times as `decoded_frame_times` gives them, the byte position of
    the packet each came from (-1 where the decoder gives none), and the first frame's field order (see
    `first_decoded_frame`)."""
    log = _showinfo_decode(path, frames=count)
    flag = _INTERLACE_FLAG_RE.search(log)
    positions: list[int] = []
    times = parse_showinfo_times(log, positions)
    return times, positions, _DECODED_FIELDS.get(flag[1] if flag else "?", "unknown")


def field_order_of(stated: str | None, decoded: Callable[[], str]) -> str:
    """A video's field order from what its container or codec header states (ffprobe's `field_order`; None
    where it states nothing) and, when asked, the decoder's flags on its first frame (`decoded`: "tt", "bb",
    "progressive" or "unknown"). Where nothing is stated (AVI, raw DV) the decoder's word is taken; where
    "progressive" is stated of frames the decoder says are coded as fields (a label written by a remux),
    the coding is: its frames are interlaced pictures, and generating them whole would interpolate combing."""
    stated = str(stated or "unknown")  # ffprobe's JSON leaves "unknown" out
    if stated not in ("unknown", PROGRESSIVE):
        return stated
    found = decoded()
    if stated == "unknown" or found in ("tt", "bb"):
        return found
    return stated


def _decoded_fields(first_decoded: Future) -> str:
    try:
        return first_decoded.result()[2]
    except VideoOpenFailure:
        return "unknown"


def decoded_field_order(path: Path) -> str:
    """The field order the decoder gives the first frame (see `first_decoded_frame`); "unknown" when it
    cannot be decoded."""
    try:
        return first_decoded_frame(path)[1]
    except VideoOpenFailure:
        return "unknown"


def decoder_keyframe_at(path: Path, seek_s: float) -> bool:
    """Whether the first frame ffmpeg decodes after seeking to `seek_s` (s from the container start; it lands
    on the frame the container's index calls a keyframe at or before it) is one the decoder calls an intra
    keyframe, or gives no type (decoders that state none)."""
    try:
        log = _showinfo_decode(path, frames=1, seek_s=seek_s)
    except VideoOpenFailure:
        return False
    found = re.search(r"showinfo.*\biskey:(\d) type:(\S)", log)
    return found is not None and found[1] == "1" and found[2] in ("I", "?")


_INTERLACE_FLAG_RE = re.compile(r"showinfo.*\bn:\s*\d+\s.*\bi:([PTB?])\b")
_DECODED_FIELDS = {"T": "tt", "B": "bb", "P": PROGRESSIVE}


def _showinfo_decode(path: Path, frames: int | None = None, seek_s: float | None = None) -> str:
    """ffmpeg's log of a decode of the first video stream (or of its first `frames`) through showinfo, from its
    start or from the keyframe the container's index gives at or before `seek_s` (s from the container start)."""
    limit = ["-frames:v", str(frames)] if frames is not None else []
    seek = ["-noaccurate_seek", "-ss", f"{max(seek_s, 0.0):.6f}"] if seek_s is not None else []
    cmd = [
        tool_path("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-noautorotate",
        *seek, "-copyts", "-i", str(path), "-map", VIDEO_STREAM_MAP, "-an", "-sn", "-dn", "-fps_mode", "passthrough",
        "-vf", "showinfo=checksum=0", *limit, "-f", "null", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False)
    log = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        last = [ln for ln in log.splitlines() if ln.strip()][-1:] or ["no error output"]
        raise VideoOpenFailure(f"cannot decode video {path}: {last[0].strip()}")
    return log


def _decodes_as_listed(
    first_decoded: Future, container_start: float, frame_times: np.ndarray, by_position: dict[str, np.ndarray]
) -> bool:
    """True when the first frames the decoder delivered (`first_decoded`: first_decoded_frames's answer) start
    with the first of `frame_times` (s from `container_start`), come in order, and each has its own packet's
    time (by its packet's position in `by_position`, _packet_times's answer; where the decoder gives none, a
    listed time), each to within a quarter of the shortest frame interval. A listed frame may be missing
    (a damaged packet the decoder skips keeps its number)."""
    eps = time_tolerance(frame_times)
    try:
        delivered, positions, _ = first_decoded.result()
    except VideoOpenFailure:
        return False  # the full decode names what is wrong
    if delivered.size == 0 or np.isnan(delivered).any() or (np.diff(delivered) <= 0).any():
        return False
    delivered = delivered - container_start
    if abs(delivered[0] - frame_times[0]) > eps:
        return False  # the decoder does not start at the first listed frame
    for stamp, position in zip(delivered.tolist(), positions, strict=True):
        own = packet_time_at(by_position["packet_positions"], by_position["packet_times"], position)
        if own is not None:
            if abs(own - stamp) > eps:
                return False  # stamped with another time than its packet's
        else:  # no packet starts there: the time must be a listed one
            k = int(np.searchsorted(frame_times, stamp - eps))
            if k == frame_times.shape[0] or abs(float(frame_times[k]) - stamp) > eps:
                return False
    return True


def parse_showinfo_times(log: str, positions: list[int] | None = None) -> np.ndarray:
    """Frame times (s) from a showinfo log, one per frame line, in order (NaN where pts is NOPTS). With
    `positions`, each frame's packet position is appended to it (-1 where none is given)."""
    time_base: Fraction | None = None
    times: list[float] = []
    for line in log.splitlines():
        if "showinfo" not in line:
            continue
        kind, value = parse_showinfo_line(line, time_base)
        if kind == "time_base":
            time_base = value
        elif kind == "time":
            times.append(float("nan") if value is None else value)
            if positions is not None:
                found = SHOWINFO_POSITION_RE.search(line)
                positions.append(int(found[1]) if found else -1)
    return np.asarray(times, dtype=np.float64)


# The byte position of the packet a frame came from, as showinfo logs it (-1, not matched, where none).
SHOWINFO_POSITION_RE = re.compile(r"\bpos:\s*(\d+)")


def parse_showinfo_line(line: str, time_base: Fraction | None) -> tuple[str, object]:
    """One showinfo log line: ("time_base", Fraction) for its configuration line, ("time", seconds or None)
    for a frame line (the integer pts in the filter's time base is exact; pts_time is printed rounded), or
    ("other", None)."""
    if (m := _CONFIG_RE.search(line)) is not None:
        return "time_base", Fraction(int(m.group(1)), int(m.group(2)))
    if (m := _SHOWINFO_RE.search(line)) is not None:
        pts = m.group(2)
        known = time_base is not None and pts.lstrip("-").isdigit()
        return "time", (float(int(pts) * time_base) if known else None)
    return "other", None


def showinfo_picture(line: str) -> tuple[int, int, str, Fraction, bool] | None:
    """(width, height, pixel format, sample aspect ratio, whether the decoder flags it coded in fields) of
    the frame a showinfo line describes (an unknown aspect ratio, 0/1, as 1); None for any other line."""
    if (m := _PICTURE_RE.search(line)) is None:
        return None
    num, den = int(m.group(2)), int(m.group(3))
    sar = Fraction(num, den) if num and den else Fraction(1)
    return int(m.group(4)), int(m.group(5)), m.group(1), sar, m.group(6) in ("T", "B")


@lru_cache(maxsize=1)
def _pixel_formats() -> dict[str, tuple[int, int]]:
    """name -> (number of components, deepest component in bits), from `ffprobe -pix_fmts`."""
    out = run_tool(["ffprobe", "-hide_banner", "-pix_fmts"], what="cannot list pixel formats").decode()
    table: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[1] != "NAME" and parts[2].isdigit():
            depths = [int(d) for d in parts[4].split("-") if d.isdigit()]
            table[parts[1]] = (int(parts[2]), max(depths, default=8))
    return table


def pixel_format_facts(pix_fmt: str) -> tuple[int, bool]:
    """(deepest component in bits, has alpha) of an ffmpeg pixel format; (8, False) when unknown."""
    components, depth = _pixel_formats().get(pix_fmt, (3, 8))
    return depth, components in (2, 4)


def refuse_mirrored_display(stream: dict, path: Path) -> None:
    """MediaError when the stream's display matrix mirrors the picture (QuickTime's "Flip Horizontal", some
    front cameras): this ffmpeg (5.1) turns frames by a display matrix's angle but ignores its mirroring,
    and can write back only a plain rotation, so every stage would read and write frames the wrong way round
    (a flipped clip came back upside down, exit 0)."""
    for side in stream.get("side_data_list", []) or []:
        rows = [line.split(":", 1)[1].split() for line in str(side.get("displaymatrix", "")).split("\n") if ":" in line]
        if len(rows) >= 2 and len(rows[0]) >= 2 and len(rows[1]) >= 2:
            (a, b), (c, d) = (int(v) for v in rows[0][:2]), (int(v) for v in rows[1][:2])
            if a * d - b * c < 0:
                raise MediaError(
                    f"{path}: its display matrix mirrors the picture (a flip, not only a rotation), which this "
                    "ffmpeg cannot apply or write back; frames would be read and written the wrong way round. "
                    "Re-encode it upright first with a player or tool that applies the flip (recent ffmpeg "
                    "releases do), or remove the matrix if the flip is not wanted"
                )


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(side["rotation"])
    return int(stream.get("tags", {}).get("rotate", 0) or 0)


def _is_cover(stream: dict) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))


def _rate(value: str | None) -> float:
    if not value or value in ("0/0", "0"):
        return 0.0
    return float(Fraction(value))
