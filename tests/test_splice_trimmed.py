"""Sources whose first video packets do not decode: an open-GOP stream trimmed with `ffmpeg -ss T -c copy`
(its first I-frame's leading B-frames refer to a frame left behind), a recording cut inside a GOP (a
broadcast TS starts on any 188-byte packet). The picture starts with the first decoded frame; a splice must
keep the copied audio where it was against that frame, and must not count the undecodable packets."""

from __future__ import annotations

import subprocess

import pytest

from semfi_batch.splice import SpliceOptions, splice_run
from tests.test_splice import make_run

RATE = 48000
# Video and audio encoders of each clip: an MPEG-2 TS as ffmpeg makes it by default (open GOPs), the same with
# closed GOPs, and H.264 with B-frames as a broadcast carries it.
MPEG2_OPEN = ("-c:v", "mpeg2video", "-g", "12", "-bf", "2", "-q:v", "3", "-c:a", "mp2")
MPEG2_CLOSED = (
    "-c:v",
    "mpeg2video",
    "-g",
    "12",
    "-bf",
    "2",
    "-q:v",
    "3",
    "-flags",
    "+cgop",
    "-sc_threshold",
    "1000000000",
    "-c:a",
    "mp2",
)
H264 = ("-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-bf", "2", "-sc_threshold", "0", "-c:a", "aac")


def _whole(path, codecs: tuple[str, ...], seconds: float = 4):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=160x120:r=25:d={seconds}",
         "-f", "lavfi", "-i", f"sine=f=440:r={RATE}:d={seconds}", *codecs, "-pix_fmt", "yuv420p", "-shortest",
         str(path)],
        check=True,
    )  # fmt: skip
    return path


def trimmed_with_ss(path, codecs: tuple[str, ...]):
    """`ffmpeg -ss 1 -c copy` of a clip: it starts at the I-frame before 1 s, whose leading B-frames are kept."""
    whole = _whole(path.with_name(f"whole{path.suffix}"), codecs)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", "1", "-i", str(whole), "-c", "copy", str(path)], check=True
    )
    return path


def cut_on_a_packet(path, codecs: tuple[str, ...], fraction: int = 5):
    """A clip's MPEG-TS bytes from the 188-byte packet nearest 1/`fraction` of the way in: a recording that
    starts inside a GOP."""
    whole = _whole(path.with_name(f"whole{path.suffix}"), codecs)
    data = whole.read_bytes()
    path.write_bytes(data[len(data) // fraction // 188 * 188 :])
    return path


def _first_frame_time(path, selector: str) -> float:
    """Time (s, the file's own clock) of the first decoded frame of stream `selector` ("v:0", "a:0")."""
    out = subprocess.run(
        ["ffprobe", "-v", "quiet", "-select_streams", selector, "-show_entries", "frame=best_effort_timestamp_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(next(line.split(",")[0] for line in out.splitlines() if line.split(",")[0]))


def audio_lead(path) -> float:
    """How long (s) the first decoded audio sample comes before the first decoded (shown) video frame."""
    return _first_frame_time(path, "v:0") - _first_frame_time(path, "a:0")


def _splice(tmp_path, src, **options):
    job = [{"pair_id": "a", "mode": "replace", "start": 30, "end": 33}]
    summary = splice_run(
        make_run(tmp_path / "run", src, job), output=tmp_path / "out.ts", options=SpliceOptions(**options)
    )
    assert not summary.failed, summary.failed
    return summary.results[0]


@pytest.mark.parametrize(
    "make, codecs, options",
    [(trimmed_with_ss, MPEG2_OPEN, {}), (cut_on_a_packet, MPEG2_CLOSED, {"reencode": True})],
    ids=["mpeg2-open-gop-trimmed", "mpeg2-cut-mid-gop-reencoded"],
)
def test_copied_audio_keeps_its_place_against_the_first_shown_frame(make, codecs, options, tmp_path):
    """A whole re-encode keeps only the decoded frames. The undecodable leading packets, counted as the source's
    picture start, "corrected" the copied audio late by as much (80 ms, 360 ms here)."""
    src = make(tmp_path / "src.ts", codecs)
    result = _splice(tmp_path, src, **options)
    assert result.method == "full re-encode"
    assert result.audio_note == "audio copied"
    moved = audio_lead(src) - audio_lead(result.output)
    assert abs(moved) <= 1 / RATE, f"the audio moved {moved * 1000:+.3f} ms late against the picture"


def _frame_count(path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "quiet", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.split()[0].strip(","))  # (MPEG-TS lists the stream again under its program)


@pytest.mark.parametrize("codecs", [H264, MPEG2_CLOSED], ids=["h264", "mpeg2"])
def test_a_recording_cut_inside_a_gop_is_smart_cut(codecs, tmp_path):
    """The smart cut's copy leaves the undecodable leading packets out, and its output starts with the first
    decoded frame, as the source's picture does. Its start was checked against the first packet: the source
    failed ("the video starts at 3.48 s instead of 2.76 s"), with no whole re-encode to fall back on."""
    src = cut_on_a_packet(tmp_path / "src.ts", codecs, fraction=4)
    result = _splice(tmp_path, src)
    assert result.method == "smart cut", result.note
    assert _frame_count(result.output) == _frame_count(src)
    moved = audio_lead(src) - audio_lead(result.output)
    assert abs(moved) <= 1 / RATE, f"the audio moved {moved * 1000:+.3f} ms late against the picture"
