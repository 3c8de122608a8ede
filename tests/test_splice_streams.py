"""The streams around the video keep their times and kinds through a splice: Opus in Matroska/WebM (whose
codec delay ffmpeg takes off when it reads and does not put back when it writes), a Matroska attachment that
ffmpeg reads as a picture, and interlaced H.264 re-encoded whole (coded interlaced again, also where a remux
labelled it progressive)."""

from __future__ import annotations

import json
import subprocess

import pytest

from semfi_batch.media.probe import decoded_field_order, probe_stream, probe_video
from semfi_batch.media.stream_facts import probe_stream_facts
from semfi_batch.splice import splice_run
from tests.test_splice import make_run

VIDEO = "testsrc2=s=96x64:r=25:d=2"


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def _probe(path, *entries: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", *entries, "-of", "json", str(path)], capture_output=True, check=True
    )
    return json.loads(out.stdout)


def _packets(path, stream: str) -> list[tuple[str, str]]:
    meta = _probe(path, "-select_streams", stream, "-show_entries", "packet=pts,size")
    return [(p["pts"], p["size"]) for p in meta["packets"]]


def _starts(path) -> dict[str, str]:
    return {
        s["codec_type"]: s["start_time"]
        for s in _probe(path, "-show_entries", "stream=codec_type,start_time")["streams"]
    }


def _splice(tmp_path, clip, suffix):
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 20, "end": 24}])
    summary = splice_run(run, output=tmp_path / f"out{suffix}")
    assert not summary.failed, summary.failed
    return summary.results[0].output


def test_opus_in_webm_keeps_its_packets_and_the_video_its_start(tmp_path):
    # The most common WebM: VP9 and Opus. Opus starts 7 ms before zero (its codec delay); the splice was
    # refused ("the video starts at 0.014s instead of 0.007s"), and a second Opus track moved 7 ms early.
    clip = tmp_path / "opus.webm"
    _ffmpeg("-f", "lavfi", "-i", VIDEO, "-f", "lavfi", "-i", "sine=r=48000:d=2", "-c:v", "libvpx-vp9", "-crf", "30",
            "-b:v", "0", "-deadline", "realtime", "-cpu-used", "8", "-g", "25", "-c:a", "libopus", clip)  # fmt: skip
    out = _splice(tmp_path, clip, ".webm")
    assert _starts(out) == _starts(clip)
    assert _packets(out, "a:0") == _packets(clip, "a:0")


def test_a_second_opus_track_in_matroska_keeps_its_packets(tmp_path):
    clip = tmp_path / "two.mkv"
    _ffmpeg("-f", "lavfi", "-i", VIDEO, "-f", "lavfi", "-i", "sine=r=48000:d=2", "-f", "lavfi", "-i",
            "sine=f=880:r=44100:d=2", "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset",
            "ultrafast", "-g", "25", "-c:a:0", "aac", "-c:a:1", "libopus", clip)  # fmt: skip
    out = _splice(tmp_path, clip, ".mkv")
    for stream in ("a:0", "a:1"):
        assert _packets(out, stream) == _packets(clip, stream), stream


def test_a_matroska_attachment_stays_an_attachment(tmp_path):
    cover = tmp_path / "cover.png"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=32x32", "-frames:v", "1", cover)
    clip = tmp_path / "cover.mkv"
    _ffmpeg("-f", "lavfi", "-i", VIDEO, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-attach", cover,
            "-metadata:s:t", "mimetype=image/png", "-metadata:s:t", "filename=cover.png", clip)  # fmt: skip
    out = _splice(tmp_path, clip, ".mkv")
    entries = ("-show_entries", "stream=codec_name:stream_disposition=attached_pic:stream_tags=filename,mimetype")
    assert _probe(out, *entries)["streams"] == _probe(clip, *entries)["streams"]
    picture = tmp_path / "back.png"
    _ffmpeg("-i", out, "-map", "0:1", "-c", "copy", "-frames:v", "1", "-update", "1", "-f", "image2", picture)
    assert picture.read_bytes() == cover.read_bytes()  # before: a one-frame PNG video track


@pytest.mark.parametrize("label", [None, "progressive"], ids=["as-coded", "labelled-progressive"])
def test_interlaced_h264_comes_back_coded_interlaced(tmp_path, label):
    """Also when a remux labelled the fields "progressive": the decoder's flags say how the frames are coded."""
    clip = tmp_path / "tff.ts"
    _ffmpeg("-f", "lavfi", "-i", VIDEO, "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme",
            "-x264-params", "tff=1", "-g", "25", clip)  # fmt: skip
    suffix = ".ts"
    if label:
        clip, suffix = tmp_path / "labelled.mkv", ".mkv"
        _ffmpeg("-i", tmp_path / "tff.ts", "-c", "copy", "-field_order", label, clip)
        stated = _probe(clip, "-select_streams", "v", "-show_entries", "stream=field_order")["streams"][0]
        assert stated["field_order"] == label
        decoded = decoded_field_order(clip)  # (x264 codes this one bottom field first, whatever tff=1 says)
        assert decoded in ("tt", "bb") and probe_video(clip).field_order == probe_stream(clip).field_order == decoded
        assert probe_stream_facts(clip).field_order == decoded
    out = _splice(tmp_path, clip, suffix)
    frames = _probe(out, "-select_streams", "v", "-show_entries", "frame=interlaced_frame")["frames"]
    assert len(frames) == 50 and all(f["interlaced_frame"] == 1 for f in frames)  # before: every frame 0
    order = _probe(out, "-select_streams", "v", "-show_entries", "stream=field_order")["streams"][0]
    assert (
        order["field_order"]
        == _probe(clip, "-select_streams", "v", "-show_entries", "stream=field_order")["streams"][0]["field_order"]
    )


def _start_against_picture(path, stream: str) -> float:
    """When a stream's first packet comes, against the picture's first time (the smallest of its first packets')."""
    video = _probe(path, "-select_streams", "v:0", "-read_intervals", "%+#8", "-show_entries", "packet=pts_time")
    other = _probe(path, "-select_streams", stream, "-read_intervals", "%+#1", "-show_entries", "packet=pts_time")
    return float(other["packets"][0]["pts_time"]) - min(float(p["pts_time"]) for p in video["packets"])


def test_copied_audio_keeps_its_place_across_containers(tmp_path):
    # Opus from MP4 into Matroska: the correction is in seconds (-itsoffset); as ticks of the source's 1/48000
    # in a bitstream filter that saw Matroska's 1/1000, it moved the sound 0.3 s.
    clip = tmp_path / "opus.mp4"
    _ffmpeg("-f", "lavfi", "-i", VIDEO, "-f", "lavfi", "-i", "sine=r=48000:d=2", "-c:v", "libx264", "-preset",
            "ultrafast", "-g", "25", "-c:a", "libopus", clip)  # fmt: skip
    out = _splice(tmp_path, clip, ".mkv")
    assert abs(_start_against_picture(out, "a:0") - _start_against_picture(clip, "a:0")) <= 0.0011


def test_fonts_and_a_cover_stay_attached_with_their_names(tmp_path):
    font = tmp_path / "font.ttf"
    font.write_bytes(bytes(range(256)) * 4)  # any bytes: Matroska keeps attachments as files
    cover = tmp_path / "cover.png"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=32x32", "-frames:v", "1", cover)
    clip = tmp_path / "both.mkv"
    _ffmpeg("-f", "lavfi", "-i", VIDEO, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-attach", font, "-metadata:s:t:0", "mimetype=application/x-truetype-font",
            "-metadata:s:t:0", "filename=font.ttf", "-attach", cover, "-metadata:s:t:1", "mimetype=image/png",
            "-metadata:s:t:1", "filename=cover.png", clip)  # fmt: skip
    out = _splice(tmp_path, clip, ".mkv")  # the cover's names went onto the font, and the mux failed
    entries = ("-show_entries", "stream=codec_type:stream_tags=filename,mimetype")
    tags = sorted(str(s.get("tags")) for s in _probe(out, *entries)["streams"])
    assert tags == sorted(str(s.get("tags")) for s in _probe(clip, *entries)["streams"])


def test_a_container_that_cannot_hold_the_codec_is_named_with_its_own_reason(tmp_path, clip_factory):
    clip = clip_factory(30)
    run = make_run(tmp_path / "run", clip, [{"pair_id": "a", "mode": "replace", "start": 10, "end": 14}])
    summary = splice_run(run, output=tmp_path / "out.webm")
    why = summary.failed[0].why
    # Before: "cannot write .out.tmp123.webm: Error initializing output stream 0:0 --".
    assert "Only VP8 or VP9" in why and "out.webm" in why and ".tmp" not in why, why
    assert not list(tmp_path.glob("*.webm")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("rotate", [90, 270])
def test_a_video_shown_turned_a_quarter_keeps_its_turn(tmp_path, rotate):
    # ffmpeg's rotate tag counts counterclockwise: the output was tagged the other way (shown 180° off) and
    # every such splice failed its generated-frame check. The matrix's own rotated clip had no rotation at all
    # (ffmpeg 5.1 drops the tag while encoding), so it is tagged here on a copy, as phones' files carry it.
    plain = tmp_path / "plain.mp4"
    _ffmpeg("-f", "lavfi", "-i", VIDEO, "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", plain)
    clip = tmp_path / "turned.mp4"
    _ffmpeg("-i", plain, "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", clip)
    entries = ("-select_streams", "v", "-show_entries", "stream_side_data=rotation")
    assert _probe(clip, *entries)["streams"][0]["side_data_list"][0]["rotation"] in (rotate, rotate - 360)
    out = _splice(tmp_path, clip, ".mp4")
    assert _probe(out, *entries) == _probe(clip, *entries)


def test_rows_left_out_are_counted_with_their_source(tmp_path, clip_factory):
    # The table's "left out" column and the OTIO timeline's left_out list read 0 and [] while the lines
    # after the table named the failed job.
    clip = clip_factory(30)
    jobs = [{"pair_id": "a", "mode": "replace", "start": 5, "end": 9},
            {"pair_id": "b", "mode": "replace", "start": 15, "end": 19, "status": "failed"}]  # fmt: skip
    summary = splice_run(make_run(tmp_path / "run", clip, jobs), output=tmp_path / "out.mp4")
    assert [s.pair_id for s in summary.results[0].skipped] == ["b"]
    assert [s.pair_id for s in summary.all_skipped] == ["b"]


def test_a_second_programme_is_refused_where_time_is_inserted_and_kept_where_none_is(tmp_path):
    """A TS with two programmes: an insert grew the first programme's picture and every audio stream, the second
    programme's sound too, while its picture was copied as it was: 120 ms apart after the insert, exit 0. Refused,
    naming the stream; a replace (no time inserted) keeps both programmes as they were."""
    src = tmp_path / "two.ts"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=2", "-f", "lavfi", "-i",
         "testsrc=s=96x64:r=25:d=2", "-f", "lavfi", "-i", "sine=d=2", "-map", "0:v", "-map", "2:a", "-map", "1:v",
         "-map", "2:a", "-c:v", "libx264", "-g", "25", "-c:a", "mp2", "-program", "title=P1:st=0:st=1", "-program",
         "title=P2:st=2:st=3", str(src)],
        check=True,
    )  # fmt: skip
    inserted = make_run(tmp_path / "ins", src, [{"pair_id": "i", "mode": "insert", "start": 30, "end": 31, "gap": 3}])
    summary = splice_run(inserted, output=tmp_path / "ins.ts")
    assert not summary.results and "another video stream (stream 2" in summary.failed[0].why
    assert not (tmp_path / "ins.ts").exists()
    replaced = make_run(tmp_path / "rep", src, [{"pair_id": "r", "mode": "replace", "start": 10, "end": 14}])
    result = splice_run(replaced, output=tmp_path / "rep.ts").results[0]
    assert stream_durations(result.output) == stream_durations(src) and len(stream_durations(src)) == 4


def stream_durations(path) -> list[str]:
    """Each stream's duration as ffprobe states it, in stream order."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [stream.get("duration") for stream in json.loads(out)["streams"]]
