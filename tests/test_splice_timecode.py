"""The source's start timecode in a spliced output of another container: written where the container holds
one, and named in the summary where it does not (MPEG-TS and AVI dropped it without a word, exit 0: an
editor conforming by timecode found the picture at 00:00:00:00)."""

from __future__ import annotations

import subprocess

import pytest

from semfi_batch.media.probe import probe_video
from semfi_batch.splice import splice_run
from tests.test_splice import make_run

REPLACE = [{"pair_id": "rep", "mode": "replace", "start": 14, "end": 18}]


@pytest.mark.parametrize(("ext", "kept"), [("mov", True), ("mkv", True), ("ts", False), ("avi", False)])
def test_start_timecode_is_kept_or_its_loss_named(tmp_path, ext, kept):
    src = tmp_path / "tape.mov"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=2", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "12", "-bf", "0", "-timecode", "10:00:00:00", str(src)],
        check=True,
    )  # fmt: skip
    assert probe_video(src).timecode == "10:00:00:00"
    summary = splice_run(make_run(tmp_path / "run", src, REPLACE), output=tmp_path / f"out.{ext}")
    assert not summary.failed, summary.failed
    result = summary.results[0]
    named = [what for what in result.dropped_streams if "timecode 10:00:00:00" in what]
    if kept:
        assert probe_video(result.output).timecode == "10:00:00:00"
        assert not named, result.dropped_streams
    else:
        assert probe_video(result.output).timecode is None
        assert named == [f"the start timecode 10:00:00:00: a .{ext} output holds none"], result.dropped_streams
