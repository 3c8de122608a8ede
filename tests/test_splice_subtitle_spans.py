"""Subtitles through a splice with inserted time: a cue after an insert point moves with it, and a cue shown
over one lasts longer by the time inserted inside it, as a chapter does; an MP4's chapter track, whose chapters
are written anew, is not named as lost (splice/final_mux.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from semfi_batch.splice import splice_run
from tests.test_splice import make_run

# Cues (s): before the insert point, over it, after it. The insert row adds 5 frames (0.2 s) at 2.04 s.
CUES = [(0.4, 0.8), (1.9, 2.3), (2.5, 2.8)]
MOVED = [(0.4, 0.8), (1.9, 2.5), (2.7, 3.0)]


def _srt(path) -> None:
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"00:00:{ms // 1000:02d},{ms % 1000:03d}"

    path.write_text("".join(f"{n}\n{stamp(a)} --> {stamp(b)}\ncue {n}\n\n" for n, (a, b) in enumerate(CUES, 1)))


def _cues(path) -> list[tuple[float, float]]:
    """(start, end) of each subtitle packet with text (MP4's empty samples between cues left out)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "s:0", "-show_entries", "packet=pts_time,duration_time,size",
         "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    packets = json.loads(out)["packets"]
    return [
        (round(float(p["pts_time"]), 3), round(float(p["pts_time"]) + float(p["duration_time"]), 3))
        for p in packets
        if int(p["size"]) > 2
    ]


@pytest.mark.parametrize(("ext", "codec"), [("mkv", "srt"), ("mkv", "ass"), ("mp4", "mov_text")])
def test_a_cue_over_an_insert_point_lasts_longer_by_the_time_inserted(ext, codec, tmp_path):
    """Its start was moved when at or after an insert point and its length kept: the cue over one (1.9-2.3 s)
    ended at 2.3 s, 0.2 s before the picture it was shown over."""
    srt = tmp_path / "cues.srt"
    _srt(srt)
    src = tmp_path / f"subs.{ext}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=3", "-i", str(srt),
         "-map", "0", "-map", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "12", "-c:s", codec, str(src)],
        check=True,
    )  # fmt: skip
    assert _cues(src) == CUES
    job = [{"pair_id": "a", "mode": "insert", "start": 50, "end": 51, "gap": 5}]
    summary = splice_run(make_run(tmp_path / "run", src, job), output=tmp_path / f"out.{ext}")
    assert not summary.failed, summary.failed
    assert _cues(summary.results[0].output) == MOVED


def _chapters(path) -> list[tuple[float, float]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(path)], capture_output=True, check=True
    ).stdout
    return [(round(float(c["start_time"]), 3), round(float(c["end_time"]), 3)) for c in json.loads(out)["chapters"]]


@pytest.mark.parametrize("ext", ["mp4", "ts"])
def test_the_chapter_track_of_an_mp4_is_named_lost_only_where_the_chapters_are(ext, tmp_path):
    """ffmpeg shows an MP4's chapter track as a data stream (bin_data). Its chapters are written anew, moved
    with the inserted time, yet the splice warned "not carried over: stream 1 (data, bin_data)". MPEG-TS holds
    no chapters: there the warning is true."""
    meta = tmp_path / "chapters.txt"
    meta.write_text(
        ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=A\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=3000\ntitle=B\n"
    )
    src = tmp_path / "chapters.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=3", "-f",
         "ffmetadata", "-i", str(meta), "-map", "0", "-map_chapters", "1", "-c:v", "libx264", "-preset", "ultrafast",
         "-g", "12", str(src)],
        check=True,
    )  # fmt: skip
    job = [{"pair_id": "a", "mode": "insert", "start": 50, "end": 51, "gap": 5}]
    summary = splice_run(make_run(tmp_path / "run", src, job), output=tmp_path / f"out.{ext}")
    assert not summary.failed, summary.failed
    result = summary.results[0]
    if ext == "mp4":
        assert _chapters(result.output) == [(0.0, 1.0), (1.0, 3.2)]
        assert result.dropped_streams == []
    else:
        assert _chapters(result.output) == []
        assert [what.split(" (")[0] for what in result.dropped_streams] == ["stream 1"]


@pytest.mark.parametrize("src_ext", ["mkv", "mp4"])
def test_text_subtitles_into_ts_fail_by_name_not_vanish(src_ext, tmp_path):
    """MPEG-TS holds no text subtitles: ffmpeg wrote the source's SubRip or mov_text cues as a data stream that
    no player shows, and the splice said nothing (exit 0, the subtitles gone)."""
    srt = tmp_path / "cues.srt"
    _srt(srt)
    src = tmp_path / f"src.{src_ext}"
    subtitle = "srt" if src_ext == "mkv" else "mov_text"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=3", "-i", str(srt),
         "-map", "0", "-map", "1", "-c:v", "libx264", "-preset", "ultrafast", "-g", "12", "-c:s", subtitle, str(src)],
        check=True,
    )  # fmt: skip
    job = [{"pair_id": "a", "mode": "replace", "start": 10, "end": 14}]
    summary = splice_run(make_run(tmp_path / "run", src, job), output=tmp_path / "out.ts")
    codec = "subrip" if src_ext == "mkv" else "mov_text"
    assert [f.why for f in summary.failed] == [
        f"out.ts cannot hold the source's {codec} subtitle (stream 1): it came out as data, which no player plays; "
        "write the output in the source's container"
    ]
    assert not (tmp_path / "out.ts").exists()
