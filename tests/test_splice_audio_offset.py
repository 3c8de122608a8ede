"""Lossy audio in MP4 that starts after the video stays in sync through a splice that rebuilds it: ffmpeg's MP4
muxer hides the encoder's priming (an edit list) only in a stream that starts at zero; placed later, the priming
is played, and the rebuilt stream must leave it out as it does where the container cannot hide it
(splice/audio.py: priming_samples measured where the stream starts). Audio that ends before the video grows only
by the time inserted before its end."""

from __future__ import annotations

import subprocess

import pytest

from semfi_batch.splice import splice_run
from semfi_batch.splice.audio import priming_samples
from tests.media_fixtures import decoded_samples
from tests.test_splice import make_run
from tests.test_splice_audio_sync import FLASH_AT, beep_after_flash

AAC_FRAME_S = 1024 / 48000


def _clip(path, audio_start: float):
    """H.264 with a white flash at FLASH_AT and AAC whose beep starts at the same instant, the audio stream
    starting `audio_start` s after the video."""
    picture = f"testsrc2=s=160x120:r=25:d=3,drawbox=t=fill:c=white:enable=between(n\\,{FLASH_AT}\\,{FLASH_AT + 1})"
    length = 3 - audio_start
    beep_at = FLASH_AT / 25 - audio_start  # in the audio input's own time
    beep = f"aevalsrc='sin(2*PI*1000*t)*between(t,{beep_at},{beep_at + 0.2})':s=48000:d={length}"  # to the sample
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", picture, "-itsoffset", str(audio_start),
         "-f", "lavfi", "-i", beep, "-c:v", "libx264", "-g", "12", "-bf", "2", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.parametrize("audio_start", [0.0, 0.25])
def test_audio_starting_after_the_video_stays_in_sync(audio_start, tmp_path):
    src = _clip(tmp_path / "src.mp4", audio_start)
    assert abs(beep_after_flash(src)) < AAC_FRAME_S / 2  # the source itself is in sync
    jobs = [{"pair_id": "a", "mode": "insert", "start": 20, "end": 21, "gap": 5}]
    summary = splice_run(make_run(tmp_path / "run", src, jobs), output=tmp_path / "out.mp4")
    assert not summary.failed, summary.failed
    assert "silences inserted" in summary.results[0].audio_note
    # The picture moved 5 frames later at frame 20; the beep must have moved with it, to well within one AAC
    # frame (it came out 1024 samples late where the audio started at 0.25 s).
    drift = beep_after_flash(tmp_path / "out.mp4") - beep_after_flash(src)
    assert abs(drift) < 0.0015, f"audio at {audio_start} s: the beep moved {drift * 1000:+.1f} ms against the picture"


def test_priming_is_measured_where_the_stream_starts():
    # MP4 hides AAC's 1024 samples of priming at zero, not in a stream that starts later; MPEG-TS never does.
    assert priming_samples("aac", 48000, 2, (), "mp4", 0.0) == 0
    assert priming_samples("aac", 48000, 2, (), "mp4", 0.25) == 1024
    assert priming_samples("aac", 48000, 2, (), "mpegts", 0.25) == 1024


@pytest.mark.parametrize("container", ["mov", "mkv"])
def test_time_inserted_after_the_audio_ends_leaves_it_as_long(container, tmp_path):
    src = tmp_path / f"src.{container}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=4", "-f", "lavfi",
         "-i", "sine=f=440:r=48000:d=2", "-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le",
         str(src)],
        check=True,
    )  # fmt: skip
    # Five frames inserted at 3.2 s, 1.2 s after the last sample: nothing of the sound moves, none is added
    # (the track was padded with silence up to the insert and through it: 2 s became 3.4 s).
    jobs = [{"pair_id": "a", "mode": "insert", "start": 79, "end": 80, "gap": 5}]
    summary = splice_run(make_run(tmp_path / "run", src, jobs), output=tmp_path / f"out.{container}")
    assert not summary.failed, summary.failed
    assert decoded_samples(tmp_path / f"out.{container}") == decoded_samples(src) == 2 * 48000
