"""Probing videos: stream facts and exact per-frame presentation timestamps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from semfi_batch.errors import MediaError, VideoOpenFailure
from semfi_batch.media.tools import run_tool


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video's first video stream. `frame_times` are presentation timestamps in seconds,
    in presentation order, relative to the container start (what ffmpeg's `-ss` counts from)."""

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

    @property
    def frame_count(self) -> int:
        return int(self.frame_times.shape[0])

    def frame_time(self, index: int) -> float:
        """Timestamp (s) of frame `index` relative to the container start."""
        return float(self.frame_times[index])


def _ffprobe_json(path: Path, *args: str) -> dict:
    out = run_tool(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        what=f"cannot read video {path}",
    )
    return json.loads(out or b"{}")


def probe_video(path: Path) -> VideoInfo:
    """Probe `path` (cached per path, size and mtime). Raises VideoOpenFailure for unreadable files or
    files without a video stream."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise VideoOpenFailure(f"cannot open video {path}: {exc.strerror or exc}") from None
    return _probe_cached(path.resolve(), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _probe_cached(path: Path, _size: int, _mtime_ns: int) -> VideoInfo:
    try:
        # One ffprobe call for streams, format and every packet's timestamps (half the start-up of two calls).
        meta = _ffprobe_json(
            path, "-show_format", "-show_streams", "-show_entries", "packet=stream_index,pts_time,dts_time,flags"
        )
    except MediaError as exc:
        raise VideoOpenFailure(str(exc)) from None
    streams = meta.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover(s)), None)
    if video is None:
        raise VideoOpenFailure(f"{path} has no video stream")
    fmt = meta.get("format", {})
    container_start = float(fmt.get("start_time", 0.0) or 0.0)
    packets = [p for p in meta.get("packets", []) if p.get("stream_index") == video["index"]]
    times = []
    for p in packets:
        if "D" in p.get("flags", ""):
            continue  # discarded by an edit list: never presented
        t = p.get("pts_time", p.get("dts_time"))
        if t is not None:
            times.append(float(t))
    if not times:
        raise VideoOpenFailure(f"{path} has a video stream but no decodable frames")
    frame_times = np.sort(np.asarray(times, dtype=np.float64)) - container_start
    return VideoInfo(
        path=path,
        width=int(video["width"]),
        height=int(video["height"]),
        codec=str(video.get("codec_name", "")),
        pix_fmt=str(video.get("pix_fmt", "")),
        avg_fps=_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")) or 0.0,
        time_base=Fraction(video.get("time_base", "1/1")),
        start_time=container_start,
        duration=float(fmt.get("duration", 0.0) or 0.0),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        frame_times=frame_times,
    )


def _is_cover(stream: dict) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))


def _rate(value: str | None) -> float:
    if not value or value in ("0/0", "0"):
        return 0.0
    return float(Fraction(value))
