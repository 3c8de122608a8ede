"""A stream that starts inside a GOP (a recording of a broadcast, a cut by packets): the pictures before its first
keyframe reference pictures the file does not hold. ffmpeg's H.264 decoder delivers none of them; its HEVC
decoder delivers them, made from missing references (grey smears). They keep their frame numbers (frame i is
still the i-th frame of a sequential decode), but detect takes no key from them: `--mode stride` made its first
row from frame 0, a smear, over the good frames after it, and `--mode damage` wrote insert rows between smears
(the decoder drops the first keyframe's leading pictures: holes in the times), each with exit 0."""

from __future__ import annotations

import json
import subprocess

import pytest

from semfi_batch.detect import DetectOptions, detect_video
from semfi_batch.media.probe import probe_video

ENCODERS = {
    "hevc": ("libx265", "-x265-params", "keyint=12:min-keyint=12:bframes=3:open-gop=1:scenecut=0:log-level=error"),
    "h264": ("libx264", "-x264-params", "keyint=12:min-keyint=12:bframes=3:open-gop=1:scenecut=0"),
}


def cut_inside_a_gop(tmp_path, codec: str):
    full, cut = tmp_path / "full.mkv", tmp_path / "cut.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x64:r=25", "-frames:v", "60",
         "-c:v", *ENCODERS[codec], "-pix_fmt", "yuv420p", str(full)],
        check=True,
    )  # fmt: skip
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(full), "-c", "copy", "-bsf:v", "noise=drop=lt(n\\,16)",
         str(cut)],
        check=True,
    )  # fmt: skip
    return cut


def first_decoded_keyframe(path) -> tuple[int, float]:
    """(how many frames the decoder delivers before its first keyframe, that keyframe's time)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=key_frame,pts_time", "-of",
         "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frames = json.loads(out)["frames"]
    at = [f["key_frame"] for f in frames].index(1)
    return at, float(frames[at]["pts_time"])


@pytest.mark.parametrize("codec", ["hevc", "h264"])
def test_frames_made_before_the_first_keyframe_are_no_keys(tmp_path, codec):
    cut = cut_inside_a_gop(tmp_path, codec)
    info = probe_video(cut)
    lead, key_time = first_decoded_keyframe(cut)
    assert (lead > 0) == (codec == "hevc")  # H.264's decoder delivers nothing before the keyframe
    stride = detect_video(cut, DetectOptions(mode="stride", every=8))
    assert stride.rows
    assert abs(info.frame_time(stride.rows[0].start_frame) + info.start_time - key_time) < 1e-3  # from the key
    damage = detect_video(cut, DetectOptions(mode="damage"))
    assert all(r.start_frame >= lead for r in damage.rows), [(r.start_frame, r.end_frame) for r in damage.rows]
    assert info.made_without_references == lead
