"""`detect --mode damage` on jittery variable frame rate footage (frame intervals 25-58 ms, nothing missing):
the last intervals are judged against the local frame duration like all the others, so no hole is made up
near the end, and a frame really missing there is still found."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from semfi_batch.detect import DetectOptions, detect_video
from semfi_batch.media.probe import probe_video

# Frame times (N * 1.25 + 0.25 * sin(1.7 N)) / 30 s in whole milliseconds; 96 frames end on a 32 ms interval
# after intervals of up to 55 ms.
FRAMES = 96
JITTER = "(N*1.25+0.25*sin(N*1.7))/30/TB"


def jittery_clip(path: Path, dropped: int | None = None) -> Path:
    """FRAMES frames of moving test content at jittered times; `dropped` leaves that frame out (a hole)."""
    chain = f"testsrc2=s=160x120:r=30,trim=end_frame={FRAMES},settb=1/1000,setpts='{JITTER}'"
    if dropped is not None:
        chain += f",select='not(eq(n\\,{dropped}))'"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-filter_complex", f"{chain},format=yuv420p[out]"]
    args += ["-map", "[out]", "-fps_mode", "passthrough", "-enc_time_base", "1/1000"]
    subprocess.run([*args, "-c:v", "libx264", "-crf", "16", "-g", "30", str(path)], check=True)
    return path


def test_jittery_footage_has_no_made_up_holes_at_its_end(tmp_path):
    clip = jittery_clip(tmp_path / "jitter.mkv")
    steps = np.diff(probe_video(clip).frame_times)
    # Really jittery to its end: its last interval is among the shortest, and longer ones come just before it.
    assert steps[-1] < 0.035 and steps[-12:].max() > 0.05 and abs(np.median(steps) - 0.042) < 1e-9
    assert detect_video(clip, DetectOptions(mode="damage")).rows == []


def test_a_frame_missing_near_the_end_of_jittery_footage_is_still_found(tmp_path):
    clip = jittery_clip(tmp_path / "dropped.mkv", dropped=FRAMES - 5)
    rows = detect_video(clip, DetectOptions(mode="damage")).rows
    assert [(r.start_frame, r.end_frame, r.mode, r.reason) for r in rows] == [
        (FRAMES - 6, FRAMES - 5, "insert", "timestamp_gap")
    ]
