"""Audio with a hole in its timestamps (a dropout: 0.3 s of packets missing, the times of the rest kept) is
rebuilt by those timestamps: the silence an insert row adds after the hole starts with the inserted frames,
as it does in a stream without one (splice/audio.py)."""

from __future__ import annotations

import re
import subprocess

import pytest

from semfi_batch.splice import splice_run
from tests.test_splice import make_run
from tests.test_splice_audio_sync import frame_times

HOLE = (1.0, 1.3)  # s: the audio packets missing from the source, their times left out


def _silence_starts(path) -> list[float]:
    """Times (s, the file's own clock) where the first audio stream falls silent for 50 ms or more."""
    log = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "info", "-copyts", "-i", str(path), "-map", "0:a:0", "-af",
         "aresample=async=1:min_hard_comp=0.001,silencedetect=n=-30dB:d=0.05", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    return [float(t) for t in re.findall(r"silence_start: ([-\d.]+)", log)]


@pytest.mark.parametrize(("ext", "audio"), [("mkv", "pcm_s16le"), ("ts", "aac")])
def test_a_silence_after_a_hole_in_the_audio_starts_with_the_inserted_frames(ext, audio, tmp_path):
    """Counted as samples from the first one, as if none were missing, every cut after the hole came 0.3 s late:
    the silence started 0.3 s after the inserted frames and the sound before it played on the wrong pictures."""
    src = tmp_path / f"hole.{ext}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=3", "-f", "lavfi",
         "-i", "sine=f=1000:r=48000:d=3", "-filter_complex", f"[1:a]aselect='not(between(t,{HOLE[0]},{HOLE[1]}))'[a]",
         "-map", "0:v", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-g", "12", "-c:a", audio,
         str(src)],
        check=True,
    )  # fmt: skip
    job = [{"pair_id": "a", "mode": "insert", "start": 50, "end": 51, "gap": 5}]  # 5 frames (0.2 s) at 2.04 s
    summary = splice_run(make_run(tmp_path / "run", src, job), output=tmp_path / f"out.{ext}")
    assert not summary.failed, summary.failed
    output = summary.results[0].output
    frames = frame_times(output)  # (MPEG-TS starts at 1.4 s)
    after_hole = [t for t in _silence_starts(output) if t - frames[0] > HOLE[1] + 0.1]
    assert after_hole, _silence_starts(output)
    assert abs(after_hole[0] - frames[51]) < 0.0015, (after_hole, frames[51])
