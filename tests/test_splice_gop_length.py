"""A whole re-encode keeps the source's keyframe interval: its encoder's own (12 frames for MPEG-2, 250 for
x264 and x265, a single keyframe for VP9) made outputs that seek far worse than the source, or break a
delivery's GOP rule, without a word."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.splice import SpliceOptions, splice_run
from tests.test_splice import make_run

SOURCES = {
    "hevc": ("mkv", ["-c:v", "libx265", "-x265-params", "keyint=20:min-keyint=20:scenecut=0:log-level=error"]),
    "vp9": ("webm", ["-c:v", "libvpx-vp9", "-g", "20", "-b:v", "1M", "-deadline", "realtime"]),
    "h264": ("mp4", ["-c:v", "libx264", "-g", "20", "-sc_threshold", "0", "-bsf:v", "filter_units=remove_types=6"]),
    "mpeg2": ("mkv", ["-c:v", "mpeg2video", "-g", "20", "-sc_threshold", "1000000000", "-q:v", "2"]),
}


def keyframe_gaps(path: Path) -> list[int]:
    """Frames from each keyframe to the next, in presentation order."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,flags", "-of", "csv=p=0",
         str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    packets = sorted((int(pts), "K" in flags) for pts, flags in (line.split(",")[:2] for line in out.split()))
    keys = np.flatnonzero([key for _, key in packets])
    return np.diff(keys).tolist()


@pytest.mark.parametrize("codec", sorted(SOURCES))
def test_a_whole_re_encode_keeps_the_sources_keyframe_interval(codec, tmp_path):
    ext, args = SOURCES[codec]
    source = tmp_path / f"src.{ext}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=128x96:r=25:d=4", "-pix_fmt", "yuv420p", *args,
         str(source)],
        check=True,
    )  # fmt: skip
    assert max(keyframe_gaps(source)) == 20
    run = make_run(tmp_path / "run", source, [{"pair_id": "r", "mode": "replace", "start": 30, "end": 34}])
    result = splice_run(run, out_dir=tmp_path / "out", options=SpliceOptions(reencode=True)).results[0]
    assert result.method == "full re-encode"
    assert "a keyframe at least every 20 frames as in the source" in result.note
    gaps = keyframe_gaps(result.output)
    assert gaps and max(gaps) <= 20, gaps
