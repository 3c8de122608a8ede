"""A video stream's packets in decode order (ffprobe, no decoding): timestamps, keyframes, edit-list
discards; the B-frame delay; microsecond rounding as ffmpeg does it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from semfi_batch.errors import VideoOpenFailure
from semfi_batch.media.tools import run_tool


@dataclass(frozen=True)
class PacketIndex:
    """A video stream's packets in decode order: timestamps in stream ticks (`time_base`)."""

    path: Path
    time_base: Fraction
    pts: np.ndarray  # int64, presentation timestamp (dts where pts is missing)
    dts: np.ndarray  # int64, decode timestamp (pts where dts is missing)
    key: np.ndarray  # bool
    discard: np.ndarray  # bool: dropped by an edit list, never presented
    size: np.ndarray  # int64
    missing: tuple[int, ...] = ()  # packets that carried no presentation time (theirs is worked out)

    @property
    def count(self) -> int:
        return int(self.pts.shape[0])

    @property
    def presented(self) -> np.ndarray:
        """Packet indices of presented frames, in presentation order (frame index -> packet index)."""
        shown = np.flatnonzero(~self.discard)
        return shown[np.argsort(self.pts[shown], kind="stable")]

    @property
    def hidden_after_start(self) -> np.ndarray:
        """Packet indices of frames an edit list hides that are not before the first shown frame: the cut
        between two edits, or the frames after the last one. A decoder of this file never shows them, but a
        copy of the packets into another file does (unlike the frames before the start, which a copy keeps
        hidden: MOV's edit list, the decoder's missing references)."""
        shown = self.pts[~self.discard]
        if not shown.size:
            return np.flatnonzero(self.discard)
        return np.flatnonzero(self.discard & (self.pts >= shown.min()))

    @property
    def keyframe_interval(self) -> int | None:
        """The most frames from one keyframe to the next in presentation order (the source's GOP length), or
        None with fewer than two keyframes."""
        keys = np.flatnonzero(self.key[self.presented])
        return int(np.diff(keys).max()) if keys.shape[0] > 1 else None

    @property
    def frame_pts(self) -> np.ndarray:
        """Presentation timestamps (ticks) of frames 0..n-1, consistent with probe.VideoInfo.frame_times."""
        return self.pts[self.presented]


def read_packets(path: Path, stream_index: int, time_base: Fraction) -> PacketIndex:
    """Index every packet of one stream (ffprobe, no decoding). In an MPEG program stream (.mpg, .vob), frames
    that share a PES carry no presentation time: those get the one ffmpeg's demuxer works out from the decode
    order (-fflags +genpts). Elsewhere a packet without one is placed by `_fill_missing_pts`."""
    index, format_name = _read_packets(path, stream_index, time_base)
    if index.missing and "mpeg" in format_name.split(","):
        index, _ = _read_packets(path, stream_index, time_base, genpts=True)
    return index


def _read_packets(
    path: Path, stream_index: int, time_base: Fraction, *, genpts: bool = False
) -> tuple[PacketIndex, str]:
    flags = ["-fflags", "+genpts"] if genpts else []
    out = run_tool(
        ["ffprobe", "-v", "error", *flags, "-select_streams", str(stream_index),
         "-show_entries", "packet=pts,dts,size,flags:format=format_name", "-of", "compact=p=0:nk=0", str(path)],
        what=f"cannot index the packets of {path}",
    ).decode()  # fmt: skip
    format_name = ""
    pts, dts, key, discard, size = [], [], [], [], []
    missing: list[int] = []
    for line in out.splitlines():
        fields = dict(part.split("=", 1) for part in line.split("|") if "=" in part)
        if "format_name" in fields:
            format_name = fields["format_name"]
            continue
        p, d = _tick(fields.get("pts")), _tick(fields.get("dts"))
        if p is None and d is None:
            continue
        pts.append(p if p is not None else d)
        dts.append(d if d is not None else p)
        if p is None:
            missing.append(len(pts) - 1)
        flags = fields.get("flags", "")
        key.append("K" in flags)
        discard.append("D" in flags)
        size.append(int(fields.get("size", 0) or 0))
    if not pts:
        raise VideoOpenFailure(f"{path} has a video stream but no packets")
    _fill_missing_pts(pts, missing)
    index = PacketIndex(
        path=Path(path),
        time_base=time_base,
        pts=np.asarray(pts, np.int64),
        dts=np.asarray(dts, np.int64),
        key=np.asarray(key, bool),
        discard=np.asarray(discard, bool),
        size=np.asarray(size, np.int64),
        missing=tuple(missing),
    )
    return index, format_name


def _fill_missing_pts(pts: list, missing: list[int]) -> None:
    """A packet without a presentation time (the last B-frame-reordered packet of some MXF files) is shown
    after every frame before it: its decode time would collide with a reordered frame's."""
    for i in missing:
        earlier = pts[:i]
        if earlier and pts[i] <= max(earlier):
            steps = sorted(b - a for a, b in zip(sorted(earlier), sorted(earlier)[1:]) if b > a)
            pts[i] = max(earlier) + (steps[len(steps) // 2] if steps else 1)


def _tick(value: str | None) -> int | None:
    return None if value in (None, "", "N/A") else int(value)


def reorder_delay(packets: PacketIndex) -> int:
    """How many frames the source's decode order runs ahead of presentation at keyframes (B-frame delay)."""
    pts = packets.frame_pts
    step = float(np.median(np.diff(pts))) if pts.shape[0] > 1 else 0.0
    keys = np.flatnonzero(packets.key & ~packets.discard)
    if step <= 0 or keys.size == 0:
        return 0
    lead = float(np.max(packets.pts[keys] - packets.dts[keys]))
    return max(int(round(lead / step)), 0)


def round_us(value_s: float | Fraction) -> int:
    """Seconds to whole microseconds (ffmpeg's AV_TIME_BASE), rounding to nearest."""
    return int(math.floor(Fraction(value_s) * 1_000_000 + Fraction(1, 2)))
