"""Closed captions inside the video's frames (ATSC A/53 in H.264 SEI): the frames a splice re-encodes come out
without them (a re-encode is fed raw frames), and the summary says which, never silently. A source without
captions gets no such line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from semfi_batch.media.captions import captions_in
from semfi_batch.splice import SpliceOptions, splice_run
from tests.test_splice import make_run

START = b"\x00\x00\x00\x01"
# SEI user_data_registered_itu_t_t35 (payload type 4): USA, ATSC, "GA94", cc_data with one CEA-608 pair.
CC_PAYLOAD = b"\xb5\x00\x31GA94\x03\x41\xff\xfc\x94\x2c\xff"
CC_SEI = START + b"\x06" + bytes([4, len(CC_PAYLOAD)]) + CC_PAYLOAD + b"\x80"


def h264_clip(path: Path, *, captions: bool) -> Path:
    """4 s of 25 fps H.264 (GOPs of 25) in MP4; with `captions`, every frame carries an A/53 caption SEI (put
    after each access unit delimiter, as broadcast encoders place it)."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=4", "-pix_fmt", "yuv420p",
         "-c:v", "libx264", "-bf", "0", "-g", "25", "-sc_threshold", "0", "-x264-params", "aud=1", "-f", "h264", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    units = raw.split(START + b"\x09")
    assert len(units) == 101 and units[0] == b""  # 100 access units, each opening with its delimiter
    if captions:
        units = [b""] + [unit[:1] + CC_SEI + unit[1:] for unit in units[1:]]  # after the delimiter's one byte
    stream = path.with_suffix(".h264")
    stream.write_bytes((START + b"\x09").join(units))
    subprocess.run(["ffmpeg", "-v", "error", "-r", "25", "-i", str(stream), "-c", "copy", str(path)], check=True)
    return path


def test_re_encoded_frames_lose_their_captions_and_the_summary_says_which(tmp_path):
    source = h264_clip(tmp_path / "cc.mp4", captions=True)
    assert captions_in(source, 0, [0.0, 2.0])
    run = make_run(tmp_path / "run", source, [{"pair_id": "r", "mode": "replace", "start": 30, "end": 34}])
    result = splice_run(run, out_dir=tmp_path / "smart").results[0]
    assert result.method == "smart cut"
    lost = [line for line in result.dropped_streams if "closed captions" in line]
    assert lost == [
        "closed captions (ATSC A/53) in the video's frames: the re-encoded source frames 25-49 (25 frames) come "
        "out without them"
    ]
    assert captions_in(result.output, 0, [0.0]) and not captions_in(result.output, 0, [1.0])  # copied GOPs keep theirs
    whole = splice_run(run, out_dir=tmp_path / "whole", options=SpliceOptions(reencode=True)).results[0]
    assert any("source frames 0-99 (100 frames)" in line for line in whole.dropped_streams), whole.dropped_streams


def test_a_source_without_captions_gets_no_caption_line(tmp_path):
    source = h264_clip(tmp_path / "plain.mp4", captions=False)
    assert not captions_in(source, 0, [0.0, 2.0])
    run = make_run(tmp_path / "run", source, [{"pair_id": "r", "mode": "replace", "start": 30, "end": 34}])
    result = splice_run(run, out_dir=tmp_path / "out", options=SpliceOptions(reencode=True)).results[0]
    assert not [line for line in result.dropped_streams if "captions" in line]
