"""The sound keeps its place against the picture through a splice into another container than the source's,
where the two count audio time differently: AVI times audio by its packets (MP3: one tick of 24 ms each) and
starts every stream at zero; WebM's Opus starts before its picture; Vorbis and Opus have no place in AVI that
ffmpeg times right; B-frames in AVI have no presentation time, so the picture starts where the source's
decoder shows it, a frame or two late (splice/join.py `_audio_moves`, splice/final_mux.py, splice/audio.py)."""

from __future__ import annotations

import pytest

from semfi_batch.splice import splice_run
from tests.test_splice import make_run
from tests.test_splice_audio_sync import beep_after_flash, flash_and_beep_clip

SOURCES = {
    # H.264 and MPEG-4 with B-frames in AVI: the picture's clock starts a frame or two late, and a copied
    # stream is moved by a second mux, which ffmpeg's -itsoffset rounded to AVI's 24 ms MP3 ticks (8 ms off).
    "h264-mp3.avi": ("-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p", "-c:a", "libmp3lame"),
    "mpeg4-bframes-mp3.avi": ("-c:v", "mpeg4", "-q:v", "2", "-g", "12", "-bf", "2", "-c:a", "libmp3lame"),
    "xvid-bframes-mp3.avi": ("-c:v", "mpeg4", "-g", "12", "-bf", "2", "-vtag", "XVID", "-c:a", "libmp3lame"),
    "vp8-opus.webm": ("-c:v", "libvpx", "-b:v", "1M", "-g", "12", "-c:a", "libopus"),
    "vp8-vorbis.webm": ("-c:v", "libvpx", "-b:v", "1M", "-g", "12", "-c:a", "libvorbis"),
}
REPLACE = [{"pair_id": "a", "mode": "replace", "start": 10, "end": 14}]
INSERTS = [
    {"pair_id": "a", "mode": "insert", "start": 10, "end": 11, "gap": 3},
    {"pair_id": "b", "mode": "insert", "start": 30, "end": 31, "gap": 2},
]


@pytest.mark.parametrize(
    ("source", "out_ext", "rows", "note"),
    [
        ("h264-mp3.avi", "nut", REPLACE, "audio copied"),  # was 8.0 ms late, exit 0
        ("mpeg4-bframes-mp3.avi", "nut", REPLACE, "audio copied"),  # was 8.0 ms early, exit 0
        # AVI's B-frames have no presentation time: the picture is placed where the source's decoder shows it.
        ("h264-mp3.avi", "ts", REPLACE, "audio copied"),  # was "37.3 ms early ... even after a correction"
        ("h264-mp3.avi", "mp4", REPLACE, "audio copied"),  # was "the video starts at 0.000000s instead of 0.080000s"
        ("mpeg4-bframes-mp3.avi", "mkv", REPLACE, "audio copied"),  # was "1880.0 ms late ... after a correction"
        ("mpeg4-bframes-mp3.avi", "ts", REPLACE, "audio copied"),  # was "18.7 ms early", then no picture size
        ("xvid-bframes-mp3.avi", "mp4", INSERTS, "silences inserted"),  # was "Tag XVID incompatible"
        ("vp8-opus.webm", "avi", INSERTS, "opus re-encoded as aac"),  # was 6.5 ms late, exit 0
        ("vp8-opus.webm", "avi", REPLACE, "opus re-encoded as aac"),  # was "Error initializing output stream"
        ("vp8-vorbis.webm", "avi", REPLACE, "vorbis re-encoded as aac"),  # was copied, mistimed: beep not heard
    ],
)
def test_sound_keeps_its_place_in_another_container(source, out_ext, rows, note, tmp_path):
    src = flash_and_beep_clip(tmp_path / f"src.{source.split('.')[-1]}", *SOURCES[source], size="96x64")
    summary = splice_run(make_run(tmp_path / "run", src, rows), output=tmp_path / f"out.{out_ext}")
    assert not summary.failed, summary.failed
    assert note in summary.results[0].audio_note, summary.results[0].audio_note
    drift = beep_after_flash(tmp_path / f"out.{out_ext}") - beep_after_flash(src)
    assert abs(drift) < 0.0015, f"{source} into .{out_ext}: the beep moved {drift * 1000:+.1f} ms against the picture"
