"""splice on real footage from ../shared/footage: audio of every kind kept, streams kept, durations as
planned, generated frames where the manifest says, smart cut packets untouched. Clips are cut to short
excerpts with -c copy so the suite stays fast."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.media.encode import probe_stream_facts
from semfi_batch.media.probe import probe_video
from semfi_batch.splice import SpliceOptions, splice_run
from tests.test_splice import (
    audio_seconds,
    content_lag,
    decode_rgb,
    generated_positions,
    make_run,
    packet_table,
    stream_kinds,
)


def excerpt(src: Path, seconds: float, out: Path) -> Path:
    """The first `seconds` of a clip, every stream, packets copied."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-t", str(seconds), "-map", "0", "-c", "copy",
         str(out)],
        check=True,
    )  # fmt: skip
    return out


def plays(path: Path) -> None:
    """ffmpeg decodes every stream of the file without a single error."""
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr[-500:]


def test_bbb_cuts_smart_cut_in_the_middle_is_packet_exact(real_clip, tmp_path):
    """Replace row in the middle of the 10 s clip (B-frames, x264, stereo AAC): only the GOP holding the
    new frames is re-encoded; every other video packet and every audio packet is the source's."""
    src = real_clip("bbb_cuts_720p24_audio.mp4")
    run = make_run(tmp_path / "run", src, [{"pair_id": "mid", "mode": "replace", "start": 60, "end": 64}])
    result = splice_run(run).results[0]
    assert result.method == "smart cut" and "source's x264 settings" in result.note
    [touched] = [p for p in result.pieces if not p.copy]
    assert (touched.first_frame, touched.end_frame) == (55, 79)
    src_v, out_v = packet_table(src), packet_table(result.output)
    assert len(out_v) == len(src_v) == 240
    outside = [i for i in range(240) if not touched.first_packet <= i < touched.end_packet]
    assert len(outside) == 216 and [out_v[i] for i in outside] == [src_v[i] for i in outside]
    assert packet_table(result.output, "a:0") == packet_table(src, "a:0")
    assert probe_stream_facts(result.output).extradata == probe_stream_facts(src).extradata
    assert stream_kinds(result.output) == stream_kinds(src) == [("video", "h264", 0), ("audio", "aac", 2)]
    plays(result.output)
    assert generated_positions(decode_rgb(result.output, shrink=8)) == [61, 62, 63]


def test_bbb_51_insert_crossfade_keeps_six_channels(real_clip, tmp_path):
    src = excerpt(real_clip("bbb_720p25_5s_aac51.mp4"), 1.2, tmp_path / "bbb51.mp4")
    run = make_run(tmp_path / "run", src, [{"pair_id": "ins", "mode": "insert", "start": 20, "end": 21, "gap": 3}])
    result = splice_run(run, options=SpliceOptions(audio="crossfade")).results[0]
    assert stream_kinds(result.output) == stream_kinds(src) == [("video", "h264", 0), ("audio", "aac", 6)]
    plays(result.output)
    info_in, info_out = probe_video(src), probe_video(result.output)
    assert info_out.frame_count == info_in.frame_count + 3
    assert abs((info_out.frame_times[-1] - info_in.frame_times[-1]) - 3 / 25) < 1e-6
    assert abs(audio_seconds(result.output) - audio_seconds(src) - 3 / 25) < 0.03
    assert "cross-fade" in result.audio_note
    assert generated_positions(decode_rgb(result.output, shrink=8)) == [21, 22, 23]


def test_chaplin_mp3_replace_copies_the_audio(real_clip, tmp_path):
    src = excerpt(real_clip("chaplin_640x360_25fps_audio.mp4"), 2, tmp_path / "chaplin.mp4")
    run = make_run(tmp_path / "run", src, [{"pair_id": "rep", "mode": "replace", "start": 10, "end": 14}])
    result = splice_run(run).results[0]
    assert result.method == "full re-encode" and "(one GOP)" in result.note  # the excerpt has one keyframe
    assert stream_kinds(result.output) == [("video", "h264", 0), ("audio", "mp3", 2)]
    assert packet_table(result.output, "a:0") == packet_table(src, "a:0")
    plays(result.output)
    out = probe_video(result.output)
    np.testing.assert_allclose(out.frame_times, probe_video(src).frame_times, atol=1e-6)
    assert generated_positions(decode_rgb(result.output, shrink=8)) == [11, 12, 13]


def test_vp8_webm_smart_cut_with_vorbis(real_clip, tmp_path):
    """Keyframes at 0, 9, 11: a replace and an insert in the GOP [9, 11) re-encode 2 frames; the GOPs
    around it are copied (the later one moved by the inserted time)."""
    src = excerpt(real_clip("bbb_720p24_30s_vp8_vorbis.webm"), 1, tmp_path / "bbb.webm")
    run = make_run(
        tmp_path / "run",
        src,
        [
            {"pair_id": "rep", "mode": "replace", "start": 8, "end": 10},
            {"pair_id": "ins", "mode": "insert", "start": 10, "end": 11, "gap": 2},
        ],
    )
    result = splice_run(run).results[0]
    assert result.method == "smart cut"
    [touched] = [p for p in result.pieces if not p.copy]
    assert (touched.first_frame, touched.end_frame, touched.frames_out) == (9, 11, 4)
    assert stream_kinds(result.output) == [("video", "vp8", 0), ("audio", "vorbis", 2)]
    plays(result.output)
    src_v, out_v = packet_table(src), packet_table(result.output)
    n = len(src_v)
    assert len(out_v) == n + 2
    assert out_v[:9] == src_v[:9]  # GOP before: untouched
    assert [p[2:] for p in out_v[13:]] == [p[2:] for p in src_v[11:]]  # GOP after: same bytes and flags...
    t = probe_video(src).frame_times
    added_ms = round(2 * (t[11] - t[10]) * 1000)  # two frames at the gap's own interval (41 or 42 ms here)
    assert {int(o[0]) - int(s[0]) for o, s in zip(out_v[13:], src_v[11:])} == {added_ms}  # ...that much later
    assert abs(audio_seconds(result.output) - audio_seconds(src) - added_ms / 1000) < 0.03
    assert generated_positions(decode_rgb(result.output, shrink=8)) == [9, 11, 12]


def test_vfr_phone_clip_keeps_timing_and_rotation(real_clip, tmp_path):
    src = real_clip("fire_vfr_handheld_720p_audio.mp4")
    run = make_run(
        tmp_path / "run",
        src,
        [
            {"pair_id": "rep", "mode": "replace", "start": 5, "end": 9},
            {"pair_id": "ins", "mode": "insert", "start": 15, "end": 16, "gap": 2},
        ],
        size=(720, 1280) if probe_stream_facts(src).rotation in (90, 270) else None,
    )
    result = splice_run(run).results[0]
    assert probe_stream_facts(result.output).rotation == probe_stream_facts(src).rotation == 180
    assert stream_kinds(result.output) == [("video", "h264", 0), ("audio", "aac", 1)]
    plays(result.output)
    t_in, t_out = probe_video(src).frame_times, probe_video(result.output).frame_times
    assert len(t_out) == len(t_in) + 2
    np.testing.assert_allclose(t_out[:16], t_in[:16], atol=1e-4)  # variable frame times kept, replaced ones too
    added = 2 * (t_in[16] - t_in[15])  # inserted frames at the gap's own interval
    np.testing.assert_allclose(t_out[18:], t_in[16:] + added, atol=1e-4)
    # The phone's first AAC packet lasts 8471 samples, not 1024: its sound is timed 155 ms after the first
    # 1024 samples. The rebuilt audio keeps that time (the hole filled with silence), so it ends where the
    # source's ends by its timestamps, plus the time inserted.
    assert abs(audio_end(result.output) - audio_end(src) - added) < 0.03
    assert generated_positions(decode_rgb(result.output, shrink=8)) == [6, 7, 8, 16, 17]


def audio_end(path: Path) -> float:
    """Where the first audio stream ends by its packets' times (the last packet's time plus its duration)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts_time,duration_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    ends = [float(a) + float(b) for a, b in (line.split(",")[:2] for line in out.split()) if "N/A" not in (a, b)]
    return max(ends)


@pytest.mark.parametrize("name", ["bbb_cuts_720p24_audio.mp4", "bbb_720p24_30s_vp8_vorbis.webm"])
def test_audio_stays_in_sync_after_insert(real_clip, tmp_path, name):
    """Real sound before the insert point is heard when it was; after it, exactly the inserted time later
    (found by cross-correlation, to the sample at 48 kHz)."""
    src = excerpt(real_clip(name), 3.4, tmp_path / f"clip{Path(name).suffix}")
    start = 56 if name.startswith("bbb_cuts") else 9  # in a short GOP: [55, 79) and [9, 11)
    run = make_run(
        tmp_path / "run", src, [{"pair_id": "ins", "mode": "insert", "start": start, "end": start + 1, "gap": 6}]
    )
    result = splice_run(run).results[0]
    t = probe_video(src).frame_times
    added = 6 * (t[start + 1] - t[start])
    before = max(0.0, t[start] - 0.35)
    assert content_lag(src, result.output, at=before, span=0.3) == pytest.approx(0.0, abs=1 / 48000)
    assert content_lag(src, result.output, at=t[start + 1] + 0.3, span=0.3) == pytest.approx(added, abs=1 / 48000)
