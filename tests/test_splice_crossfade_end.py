"""`splice --audio crossfade` near the end of a file: the rebuilt audio is as long as the picture in every
container. Matroska and AVI say nothing of their audio's length, so the check that a cross-fade had audio
enough after it was skipped there, and ffmpeg's acrossfade dropped the rest of the stream (exit 0, the audio
0.16 s short of the picture)."""

from __future__ import annotations

import subprocess

import pytest

from semfi_batch.splice import SpliceOptions, splice_run
from tests.media_fixtures import decoded_samples
from tests.test_splice import make_run

RATE = 48000


@pytest.mark.parametrize("container", ["mkv", "avi", "mov"])
def test_a_cross_fade_at_the_end_keeps_the_audio_as_long_as_the_picture(tmp_path, container):
    source = tmp_path / f"clip.{container}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=2.4", "-f", "lavfi",
         "-i", f"sine=f=440:r={RATE}:d=2.4", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-c:a", "pcm_s16le",
         "-shortest", str(source)],
        check=True,
    )  # fmt: skip
    # Two frames inserted after frame 58 of 60: the left side has 0.04 s of audio to play on into 0.08 s.
    run = make_run(tmp_path / "run", source, [{"pair_id": "end", "mode": "insert", "start": 58, "end": 59, "gap": 2}])
    result = splice_run(run, options=SpliceOptions(audio="crossfade")).results[0]
    assert "cross-fade" in result.audio_note
    assert decoded_samples(result.output) == 62 * RATE // 25  # 2.48 s, the picture's length
