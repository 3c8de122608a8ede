"""Audio stays in sync with the picture through a splice that rebuilds it (insert rows), whatever its encoder
and container: where the container cannot hide the encoder's priming (MP3 in AVI, MP2 in MPEG-PS, AAC in
MPEG-TS and Matroska, AC-3 in Matroska), the rebuilt stream leaves it out (splice/audio.py)."""

from __future__ import annotations

import re
import subprocess

import pytest

from semfi_batch.splice import splice_run
from semfi_batch.splice.audio import priming_samples
from tests.test_splice import make_run

FLASH_AT = 50  # frame of the white flash; the beep starts with it (2.0 s at 25 fps)
CELLS = {
    "mp3-avi": ("avi", ("-c:v", "mpeg4", "-q:v", "2", "-g", "12"), ("-c:a", "libmp3lame")),
    "mp2-mpg": ("mpg", ("-c:v", "mpeg2video", "-q:v", "2", "-g", "12"), ("-c:a", "mp2")),
    "aac-ts": ("ts", ("-c:v", "libx264", "-g", "12"), ("-c:a", "aac")),
    "ac3-mkv": ("mkv", ("-c:v", "libx264", "-g", "12"), ("-c:a", "ac3")),
    "aac-mkv": ("mkv", ("-c:v", "libx264", "-g", "12"), ("-c:a", "aac")),
    "aac-mp4": ("mp4", ("-c:v", "libx264", "-g", "12"), ("-c:a", "aac")),  # priming hidden by the edit list
}


def flash_and_beep_clip(path, *codecs: str, size: str = "352x288"):
    """3 s of testsrc2 at 25 fps with a white flash at FLASH_AT and a 1 kHz beep starting with it, encoded by
    `codecs` (ffmpeg's output options) into `path`."""
    picture = f"testsrc2=s={size}:r=25:d=3,drawbox=t=fill:c=white:enable=between(n\\,{FLASH_AT}\\,{FLASH_AT + 1})"
    beep = f"sine=f=1000:r=48000:d=3,volume='if(between(t,{FLASH_AT / 25},{FLASH_AT / 25 + 0.2}),1,0)':eval=frame"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", picture, "-f", "lavfi", "-i", beep,
         *codecs, str(path)],
        check=True,
    )  # fmt: skip
    return path


def beep_after_flash(path) -> float:
    """Seconds from the flash (the first white frame) to the beep's first sound, as a player presents them.
    Both streams decoded in one run: decoded apart, ffmpeg starts the clock of an MPEG-TS at the start of the
    one stream it reads ("Correcting start time"), and a TS whose picture starts 80 ms after its sound was
    measured 80 ms off."""
    flash = "[0:v:0]signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-[v]"
    graph = f"{flash};[0:a:0]silencedetect=n=-30dB:d=0.05[a]"
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "info", "-i", str(path), "-filter_complex", graph, "-map", "[v]", "-map", "[a]",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    times = [float(t) for t in re.findall(r"pts_time:([-\d.]+)", run.stdout)]
    levels = [float(v) for v in re.findall(r"YAVG=([\d.]+)", run.stdout)]
    first_white = next(t for t, y in zip(times, levels) if y > 200)
    return float(re.findall(r"silence_end: ([-\d.]+)", run.stderr)[0]) - first_white


@pytest.mark.parametrize("name", CELLS)
def test_rebuilt_audio_stays_in_sync(name, tmp_path):
    ext, video, audio = CELLS[name]
    src = flash_and_beep_clip(tmp_path / f"src.{ext}", *video, *audio)
    jobs = [
        {"pair_id": "a", "mode": "insert", "start": 10, "end": 11, "gap": 3},
        {"pair_id": "b", "mode": "insert", "start": 30, "end": 31, "gap": 2},
    ]
    summary = splice_run(make_run(tmp_path / "run", src, jobs), output=tmp_path / f"out.{ext}")
    assert not summary.failed, summary.failed
    assert "silences inserted" in summary.results[0].audio_note
    # The picture moved 5 frames later; the sound must have moved with it, to the sample the codec allows.
    drift = beep_after_flash(tmp_path / f"out.{ext}") - beep_after_flash(src)
    assert abs(drift) < 0.0015, f"{name}: the beep moved {drift * 1000:+.1f} ms against the picture"


def test_priming_is_measured_per_encoder_and_container():
    # LAME's delay (576 + 529 samples) is played in AVI; MP4's edit list hides AAC's 1024; AC-3 primes 256.
    assert priming_samples("libmp3lame", 48000, 1, (), "avi") == 1105
    assert priming_samples("aac", 48000, 2, (), "mp4") == 0
    assert priming_samples("aac", 48000, 2, (), "mpegts") == 1024
    assert priming_samples("ac3", 48000, 2, (), "matroska") == 256
    # Counted in the source's samples where the encoder works at another rate (AAC at 96 kHz for 192 kHz).
    assert priming_samples("aac", 192000, 2, (), "mpegts") == 2048


def _first_silence(path) -> float:
    """Time (s, the file's own clock) where the audio first falls silent for 50 ms."""
    log = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "info", "-copyts", "-i", str(path), "-map", "0:a:0", "-af",
         "silencedetect=n=-30dB:d=0.05", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    return float(re.findall(r"silence_start: ([-\d.]+)", log)[0])


def frame_times(path) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0",
         str(path)], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [float(line.strip(",")) for line in out.split() if line.strip(",")]


@pytest.mark.parametrize("name", ["aac-ts", "aac-mkv", "ac3-mkv", "aac-mp4"])
def test_the_inserted_silence_starts_with_the_inserted_frames(name, tmp_path):
    """Under a steady tone, the silence an insert row adds starts where its first frame is shown, to the
    millisecond. Where a second mux moved the rebuilt stream into place (AAC in MPEG-TS and Matroska), the
    move also moved the cuts: every silence started 1024 samples (21 ms) early."""
    ext, video, audio = CELLS[name]
    src = tmp_path / f"tone.{ext}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=3", "-f", "lavfi",
         "-i", "sine=f=1000:r=48000:d=3", *video, *audio, str(src)],
        check=True,
    )  # fmt: skip
    job = [{"pair_id": "a", "mode": "insert", "start": 30, "end": 31, "gap": 4}]
    summary = splice_run(make_run(tmp_path / "run", src, job), output=tmp_path / f"out.{ext}")
    assert not summary.failed, summary.failed
    output = summary.results[0].output
    first_inserted = frame_times(output)[31]
    assert abs(_first_silence(output) - first_inserted) < 0.0015, (_first_silence(output), first_inserted)


def _format_duration(path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(out)


@pytest.mark.parametrize("ext", ["mp4", "mov"])
def test_copied_audio_keeps_the_trim_of_an_edit_list(ext, tmp_path):
    """A clip trimmed with `-ss 0.52 -c copy` keeps its video back to the keyframe before the cut and its audio
    0.54 s before it, both hidden by edit lists. A replace row copies the audio: it must keep its trim. The
    hidden video packets, counted as the source's picture start, moved the copied audio 0.52 s late (the beep
    0.52 s after the flash; the file 2.54 s long, not 2.12)."""
    whole = flash_and_beep_clip(tmp_path / f"whole.{ext}", "-c:v", "libx264", "-g", "25", "-bf", "2", "-c:a", "aac")
    src = tmp_path / f"cut.{ext}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", "0.52", "-i", str(whole), "-c", "copy", "-t", "2",
         str(src)],
        check=True,
    )  # fmt: skip
    job = [{"pair_id": "a", "mode": "replace", "start": 30, "end": 34}]
    summary = splice_run(make_run(tmp_path / "run", src, job), output=tmp_path / f"out.{ext}")
    assert not summary.failed, summary.failed
    output = summary.results[0].output
    drift = beep_after_flash(output) - beep_after_flash(src)
    assert abs(drift) < 0.0015, f"the beep moved {drift * 1000:+.1f} ms against the picture"
    assert abs(_format_duration(output) - _format_duration(src)) < 0.001, _format_duration(output)
    assert len(frame_times(output)) == len(frame_times(src))
