"""The picture (size, pixel format, aspect) at keyframes of a file with no aspect of its own in the container
(MPEG-TS, program streams), read from the file itself. A smart cut decodes the GOPs it re-encodes from a copy of
the video in MOV, whose container states the aspect of the stream's first picture, and ffmpeg gives every decoded
frame the container's aspect: a broadcast that switches between 4:3 and 16:9 (SD DVB does, by its pictures'
aspect alone) would have its GOPs re-encoded at the first picture's aspect, without a word. Pictures change
only at keyframes (a new sequence header), so decoding the keyframes that open the re-encoded GOPs tells."""

from __future__ import annotations

import json
from fractions import Fraction

from semfi_batch.media.frame_pipes import picture_change
from semfi_batch.media.stream_facts import StreamFacts
from semfi_batch.media.tools import run_tool

# How far either side of a keyframe's time its decode is looked for (a seek in MPEG-TS is not exact).
_WINDOW_S = 0.5


def container_states_no_aspect(facts: StreamFacts) -> bool:
    """Whether the container has no aspect of its own: its pictures' aspect is the only one."""
    return bool({"mpegts", "mpeg"} & set(facts.format_name.split(",")))


def check_keyframe_pictures(facts: StreamFacts, times: list[float]) -> None:
    """MediaError (picture_change) when a keyframe of `facts.path` shown at one of `times` (s, on the file's
    clock) has another size, pixel format or aspect than the stream states."""
    if not times:
        return
    intervals = ",".join(f"{max(t - _WINDOW_S, 0):.6f}%{t + _WINDOW_S:.6f}" for t in sorted(times))
    out = run_tool(
        ["ffprobe", "-v", "error", "-select_streams", str(facts.index), "-skip_frame", "nokey", "-read_intervals",
         intervals, "-show_entries", "frame=pts_time,width,height,pix_fmt,sample_aspect_ratio", "-of", "json",
         str(facts.path)],
        what=f"cannot read the keyframes of {facts.path}",
    )  # fmt: skip
    stated = Fraction(facts.sar.replace(":", "/")) if facts.sar else Fraction(1)
    for frame in json.loads(out or b"{}").get("frames") or []:
        try:
            at = float(frame["pts_time"])
        except (KeyError, ValueError):
            continue
        if not any(abs(at - t) < 1e-3 for t in times):
            continue
        num, _, den = str(frame.get("sample_aspect_ratio", "0:1")).partition(":")
        aspect = (
            Fraction(int(num), int(den))
            if num.isdecimal() and den.isdecimal() and int(num) and int(den)
            else Fraction(1)
        )
        picture = (int(frame.get("width", 0)), int(frame.get("height", 0)), str(frame.get("pix_fmt", "")), aspect)
        if picture != (facts.width, facts.height, facts.pix_fmt, stated):
            raise picture_change(at, picture, facts, stated)
