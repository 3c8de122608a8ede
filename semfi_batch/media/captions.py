"""Closed captions carried inside the video's own frames (ATSC A/53 / CEA-608/708: SEI messages of H.264
and HEVC, user data of MPEG-2). ffmpeg's decoders hand them over as frame side data, which the raw frames a
re-encode is fed from do not carry: frames re-encoded here come out without their captions. `captions_in`
finds whether a stretch of a video has them, by decoding a few frames at each place asked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from semfi_batch.media.tools import run_tool

A53_SIDE_DATA = "ATSC A53 Part 4 Closed Captions"  # ffprobe's name for the frames' caption side data
SAMPLED_FRAMES = 8  # frames decoded at each place: caption data is sent with every frame, blank or not


def captions_in(path: Path, stream_index: int, seconds: Sequence[float]) -> bool:
    """Whether any of the frames decoded from each of `seconds` (stream time, from the keyframe before it)
    carries closed captions."""
    if not seconds:
        return False
    intervals = ",".join(f"{max(0.0, s):.6f}%+#{SAMPLED_FRAMES}" for s in seconds)
    out = run_tool(
        ["ffprobe", "-v", "error", "-select_streams", str(stream_index), "-read_intervals", intervals,
         "-show_entries", "frame_side_data=side_data_type", "-of", "csv=p=0", str(path)],
        what=f"cannot read the frames of {path}",
    )  # fmt: skip
    return A53_SIDE_DATA.encode() in out
