"""H.264 in MPEG-TS is smart-cut as in MP4, into .ts or .m2ts: every frame in its place, no GOP joined twice
(at 23.976 fps a 90 kHz stream's times are no whole microseconds, and a seek to a keyframe at its own time
found the keyframe before it), and the joins checked in a copy of the output that has an index (a seek in TS
lands on any packet, and the decoder's complaints about the frames before the next keyframe failed every such
smart cut)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from semfi_batch.media.probe import probe_video
from semfi_batch.splice import SpliceOptions, splice_run
from semfi_batch.splice.audio import first_decoded_time, first_shown_time, packet_times
from tests.conftest import numbered_clip
from tests.test_splice import assert_spliced_frames, decode_rgb, make_run

X264 = ["-c:v", "libx264", "-crf", "16", "-preset", "veryfast", "-g", "12", "-bf", "2", "-pix_fmt", "yuv420p"]
ROWS = [
    {"pair_id": "rep", "mode": "replace", "start": 14, "end": 18},
    {"pair_id": "ins", "mode": "insert", "start": 40, "end": 41, "gap": 2},
]


@pytest.mark.parametrize(("rate", "ext", "out_ext"), [("24000/1001", "ts", "ts"), ("25", "ts", "m2ts")])
def test_h264_smart_cut_into_ts_is_frame_exact(tmp_path, rate, ext, out_ext):
    plain = numbered_clip(tmp_path / "n.mkv", 60, fps=rate, codec="ffv1")
    src = tmp_path / f"src.{ext}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(plain), *X264, str(src)], check=True)
    assert probe_video(src).frame_count == 60
    run = make_run(tmp_path / "run", src, ROWS)
    result = splice_run(run, output=tmp_path / f"out.{out_ext}").results[0]
    assert result.method == "smart cut", result.note
    assert any(p.copy for p in result.pieces) and result.frames_reencoded < 62
    expected = [*range(15), (0, 0), (0, 1), (0, 2), *range(18, 41), (1, 0), (1, 1), *range(41, 60)]
    assert_spliced_frames(decode_rgb(result.output), expected)
    # Every keyframe decodes on its own (a receiver tuning in, an HLS segment): the re-encoded ones carried no
    # parameter sets after copied ones that had theirs.
    idrs = idr_parameter_sets(result.output)
    assert len(idrs) >= 5 and all(idrs), idrs


def idr_parameter_sets(path) -> list[bool]:
    """For each IDR picture of an H.264 TS, in order, whether its access unit carries an SPS and a PPS."""
    data = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "h264", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    found, seen = [], set()
    for unit in re.split(b"\x00\x00\x01", data)[1:]:
        kind = unit[0] & 0x1F
        if kind == 9:  # an access unit delimiter starts the next picture
            seen = set()
        elif kind in (7, 8):
            seen.add(kind)
        elif kind == 5 and unit[1] & 0x80:  # the first slice of an IDR picture (first_mb_in_slice 0)
            found.append(seen >= {7, 8})
        elif kind == 1 and unit[1] & 0x80:
            seen = set()
    return found


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """`sources(name, rate, options)`: a 60-frame numbered clip at `rate` encoded with ffmpeg `options` (more
    inputs, then output options) into `name`, made once in this module; the tests only read them."""
    made = {}

    def get(name: str, rate: str, options: list[str]) -> Path:
        key = (name, rate, tuple(options))
        if key not in made:
            folder = tmp_path_factory.mktemp("src")
            plain = numbered_clip(folder / "n.mkv", 60, fps=rate, codec="ffv1")
            made[key] = folder / name
            subprocess.run(
                ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(plain), *options, str(made[key])], check=True
            )
        return made[key]

    return get


# A source whose B-frames decode before zero (H.264 or HEVC from MP4 or Matroska), with sound. MPEG-TS and NUT
# move every stream later together to keep decode times non-negative: the picture starts later than the
# source's, in step with the sound. Every such splice failed ("the video starts at 0.080000s instead of 0").
B_FRAME_SOURCES = {
    "mp4": X264 + ["-c:a", "aac"],
    "mkv": ["-c:v", "libx265", "-x265-params", "bframes=3:keyint=12:log-level=error", "-pix_fmt", "yuv420p",
            "-c:a", "aac"],
}  # fmt: skip
REPLACE_ONLY = ROWS[:1]


def spliced_in_place(tmp_path, src, rows, out_ext, options):
    """Splice ROWS (or REPLACE_ONLY) of a 60-frame numbered `src` into out.`out_ext`: the result, after checking
    that every frame is the planned one, and the frames planned."""
    run = make_run(tmp_path / "run", src, rows)
    summary = splice_run(run, output=tmp_path / f"out.{out_ext}", options=options)
    assert not summary.failed, summary.failed
    result = summary.results[0]
    expected = [*range(15), (0, 0), (0, 1), (0, 2), *range(18, 60)]
    if len(rows) > 1:
        expected = [*expected[:41], (1, 0), (1, 1), *expected[41:]]
    assert_spliced_frames(decode_rgb(result.output), expected)
    return result, expected


@pytest.mark.parametrize(
    ("src_ext", "out_ext", "reencode", "rows"),
    [
        ("mp4", "ts", False, REPLACE_ONLY),  # audio copied
        ("mp4", "nut", False, ROWS),  # audio rebuilt around the inserted frames
        ("mp4", "ts", True, ROWS),
        ("mp4", "nut", True, REPLACE_ONLY),
        ("mkv", "nut", False, REPLACE_ONLY),  # Matroska's millisecond clock rescaled into NUT's 1/44100
    ],
)
def test_b_frames_before_zero_splice_into_ts_and_nut_in_sync(tmp_path, sources, src_ext, out_ext, reencode, rows):
    src = sources(f"src.{src_ext}", "25", ["-f", "lavfi", "-i", "sine=f=440:d=2.4", *B_FRAME_SOURCES[src_ext]])
    result, _ = spliced_in_place(tmp_path, src, rows, out_ext, SpliceOptions(reencode=reencode))

    # The sound starts where the source's did against the picture (the muxer's shift moved both): a copied
    # stream's first packet (its priming, which MP4's edit list hides and TS cannot), a rebuilt one's first
    # sample.
    def sound(path):
        return first_decoded_time(path, 1) if len(rows) > 1 else packet_times(path, 1)[0][0]

    lead = [sound(p) - first_shown_time(p, 0) for p in (src, result.output)]
    assert abs(lead[1] - lead[0]) <= 0.002, lead


@pytest.mark.parametrize(
    ("rate", "out_ext", "rows"),
    [("25", "mp4", ROWS), ("30000/1001", "mov", ROWS), ("25", "mp4", REPLACE_ONLY)],
)
def test_ts_spliced_into_another_container_starts_at_zero_in_sync(tmp_path, sources, rate, out_ext, rows):
    """An MPEG-TS clock starts anywhere (ffmpeg's muxer: 1.4 s). Spliced into MP4 or MOV, the output kept that
    time as an empty edit, a black head 1.4 s long and a longer programme in every editor (exit 0); at 29.97
    fps, whose frames start on no whole millisecond, MP4 and MOV failed. Every stream is moved back together:
    the output starts at zero, as long as the source plus the inserted frames, the sound where it was against
    the picture."""
    sound = ["-f", "lavfi", "-i", "sine=f=440:d=2.4", "-c:a", "aac", "-shortest"]
    src = sources("src.ts", rate, [*sound, *X264])
    assert probe_video(src).start_time > 1.0
    result, expected = spliced_in_place(tmp_path, src, rows, out_ext, SpliceOptions())
    src_info, out_info = probe_video(src), probe_video(result.output)
    assert out_info.start_time < 0.05, out_info.start_time
    inserted = (len(expected) - 60) / src_info.avg_fps
    assert abs(out_info.duration - (src_info.duration + inserted)) < 0.05, (out_info.duration, src_info.duration)

    def sound(path):
        return first_decoded_time(path, 1) if len(rows) > 1 else packet_times(path, 1)[0][0]

    lead = [sound(p) - first_shown_time(p, 0) for p in (src, result.output)]
    assert abs(lead[1] - lead[0]) <= 0.002, lead


def test_a_video_codec_ts_cannot_hold_is_refused_by_name(tmp_path):
    """ProRes into .ts: ffmpeg writes the picture as a data stream without a word; the splice failed with
    "out.ts has no video stream", which named neither the codec nor what to do."""
    src = tmp_path / "src.mov"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=1.2", "-c:v",
         "prores_ks", "-profile:v", "0", str(src)],
        check=True,
    )  # fmt: skip
    summary = splice_run(make_run(tmp_path / "run", src, ROWS[:1]), output=tmp_path / "out.ts")
    assert [f.why for f in summary.failed] == [
        "out.ts cannot hold the source's prores video (stream 0): it came out as data, which no player plays; "
        "write the output in the source's container"
    ]
    assert not (tmp_path / "out.ts").exists()
