"""splice on synthetic clips: frames found by content, smart cut packet identity, audio, failures, CLI, OTIO.

Helpers here are shared with test_splice_real.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.encode import (
    avcc_parameter_sets,
    h264_parameter_set_ids,
    h264_sps_timing,
    probe_stream_facts,
    pts_expression,
    read_packets,
    x264_params_from_sei,
)
from semfi_batch.media.frames import write_png
from semfi_batch.media.probe import probe_video
from semfi_batch.splice import SpliceOptions, splice_run
from semfi_batch.splice.gop_plan import Gop, gop_index
from semfi_batch.splice.runfolder import Edit
from semfi_batch.splice.timeline import build_timeline, plan_pieces
from tests.conftest import frame_number, numbered_clip

# --- helpers --------------------------------------------------------------------------------------------


def job_colour(job: int, k: int) -> tuple[int, int, int]:
    """Solid colour of generated frame k of job number `job` (saturated, so never mistaken for gray frames)."""
    return (200 - 60 * (job % 3), 40 + 70 * (job % 2), 40 + 12 * (k % 10))


def make_run(run_dir: Path, source: Path, jobs: list[dict], size: tuple[int, int] | None = None) -> Path:
    """Write a run folder as `semfi-batch run` lays it out: manifest copy, run.json, jobs/<pair_id>/ with
    solid-colour frames and record.json. A job dict: pair_id, mode, start, end, [gap], [status] ("done",
    "failed", or "missing" for no job folder), [reason]."""
    info = probe_video(source)
    width, height = size or (info.width, info.height)
    rows = []
    for n, job in enumerate(jobs):
        gap = job.get("gap", job["end"] - job["start"] - 1)
        rows.append(
            {
                "pair_id": job["pair_id"], "source": str(source), "start_frame": job["start"],
                "end_frame": job["end"], "mode": job["mode"], "gap_frames": gap,
                "reason": job.get("reason", "test"),
            }
        )  # fmt: skip
        status = job.get("status", "done")
        if status == "missing":
            continue
        folder = run_dir / "jobs" / job["pair_id"]
        (folder / "frames").mkdir(parents=True)
        if status == "done":
            for k in range(gap):
                write_png(
                    folder / "frames" / f"{k + 1:06d}.png", np.full((height, width, 3), job_colour(n, k), np.uint8)
                )
        record = {
            "pair_id": job["pair_id"], "status": status, "error": None if status == "done" else "backend exploded",
            "mode": job["mode"], "start_frame": job["start"], "end_frame": job["end"], "gap_frames": gap,
            "frames": gap if status == "done" else 0,
        }  # fmt: skip
        (folder / "record.json").write_text(json.dumps(record))
    write_manifest(rows, run_dir / "manifest.parquet")
    (run_dir / "run.json").write_text(json.dumps({"manifest": str(run_dir / "manifest.parquet"), "backend": "blend"}))
    return run_dir


def add_audio(video: Path, out: Path, *, channels: int = 2, codec: str = "aac") -> Path:
    """`video` with a sine tone (different pitch per channel) as its audio stream."""
    info = probe_video(video)
    tones = "|".join(f"sin({440 + 110 * c}*2*PI*t)" for c in range(channels))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video), "-f", "lavfi", "-i",
         f"aevalsrc='{tones}':s=48000:d={info.duration:.3f}", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
         "-c:a", codec, "-b:a", "128k", str(out)],
        check=True,
    )  # fmt: skip
    return out


def decode_rgb(path: Path, shrink: int = 1) -> np.ndarray:
    """Every video frame of `path` as RGB (optionally `shrink` times smaller), in presentation order, none
    duplicated or dropped."""
    width, height = _displayed_size(path)
    width, height = width // shrink // 2 * 2, height // shrink // 2 * 2
    scale = ["-vf", f"scale={width}:{height}:flags=area"] if shrink > 1 else []
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", *scale, "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)


def _displayed_size(path: Path) -> tuple[int, int]:
    """Width and height of the first video stream's frames as ffmpeg decodes them (turned by its display
    rotation), from one ffprobe (the tool's own probes read the frames too: seven processes per decode)."""
    stream = json.loads(
        subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=width,height:stream_side_data=rotation:stream_tags=rotate",
                "-of",
                "json",
                str(path),
            ],
            capture_output=True,
            check=True,
        ).stdout  # fmt: skip
    )["streams"][0]
    turns = [side.get("rotation") for side in stream.get("side_data_list", [])] + [stream.get("tags", {}).get("rotate")]
    rotated = any(turn is not None and abs(int(float(turn))) % 180 == 90 for turn in turns)
    return (stream["height"], stream["width"]) if rotated else (stream["width"], stream["height"])


def solid(frame: np.ndarray, colour: tuple[int, int, int] | None = None, tol: float = 6.0) -> bool:
    """Whether a frame is one flat colour (optionally: this colour), away from edges that codecs smear."""
    h, w = frame.shape[:2]
    core = frame[h // 8 : h - h // 8, w // 8 : w - w // 8].reshape(-1, 3).astype(float)
    if core.std(axis=0).max() > 4.0:
        return False
    return colour is None or float(np.abs(core.mean(axis=0) - np.array(colour)).max()) <= tol


def generated_positions(frames: np.ndarray) -> list[int]:
    """Indices of frames that look like generated frames (flat, saturated colour)."""
    out = []
    for i, f in enumerate(frames):
        mean = f.reshape(-1, 3).mean(axis=0)
        if solid(f) and mean.max() - mean.min() > 60:
            out.append(i)
    return out


def packet_table(path: Path, selector: str = "v:0") -> list[tuple[str, str, str, str]]:
    """(pts, dts, flags, md5 of data) of every packet of one stream, in file order."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", selector, "-show_data_hash", "MD5",
         "-show_entries", "packet=pts,dts,flags,data_hash", "-of", "compact=p=0:nk=1", str(path)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def stream_kinds(path: Path) -> list[tuple[str, str, int]]:
    """(codec_type, codec_name, channels) per stream."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,channels", "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return [(s["codec_type"], s["codec_name"], int(s.get("channels", 0))) for s in json.loads(out)["streams"]]


def audio_seconds(path: Path, selector: str = "a:0") -> float:
    """Length of the decoded audio (samples / rate)."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:{selector}", "-ac", "1", "-ar", "8000",
         "-f", "s16le", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return len(out) / 2 / 8000


def audio_rms(path: Path, start: float, end: float) -> float:
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", "8000",
         "-f", "s16le", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    pcm = np.frombuffer(out, np.int16).astype(float)
    seg = pcm[int(start * 8000) : int(end * 8000)]
    return float(np.sqrt(np.mean(seg**2))) if seg.size else 0.0


def file_md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def numbered_with_audio(tmp_path):
    """A 64x48 numbered clip (GOPs of <= 12, B-frames, lossless) of 60 frames at 25 fps with stereo AAC."""
    clip = numbered_clip(tmp_path / "plain.mp4", 60)
    return add_audio(clip, tmp_path / "numbered.mp4")


# --- planning (no media) -----------------------------------------------------------------------------------


def _edit(pair_id: str, mode: str, a: int, b: int, g: int) -> Edit:
    return Edit(pair_id, mode, a, b, tuple(Path(f"{k}.png") for k in range(g)), Path("."))


def test_timeline_places_replaced_and_inserted_frames():
    t = np.arange(30, dtype=np.int64) * 512
    tl = build_timeline(t, [_edit("r", "replace", 3, 7, 3), _edit("i", "insert", 10, 11, 4)])
    assert tl.count == 34
    assert list(tl.src[:12]) == [0, 1, 2, 3, -1, -1, -1, 7, 8, 9, 10, -1]
    assert list(tl.pts[4:7]) == [4 * 512, 5 * 512, 6 * 512]  # replaced frames keep their times
    assert list(tl.pts[11:15]) == [11 * 512, 12 * 512, 13 * 512, 14 * 512]
    assert tl.pts[15] == 15 * 512 and tl.src[15] == 11  # everything after moves by 4 frames
    assert [(s.at, s.ticks) for s in tl.shifts] == [(11 * 512, 4 * 512)]
    assert tl.clips() == [("source", 0, 4, 0), ("generated", 0, 3, 4), ("source", 7, 11, 7),
                          ("generated", 1, 4, 11), ("source", 11, 30, 15)]  # fmt: skip


def test_insert_over_dropped_frames_uses_mean_interval():
    t = np.array([0, 100, 200, 400, 500, 600])  # variable rate
    tl = build_timeline(t, [_edit("i", "insert", 1, 3, 1)])  # frame 2 leaves, 1 new frame: span stays
    assert list(tl.src) == [0, 1, -1, 3, 4, 5]
    assert list(tl.pts) == [0, 100, 250, 400, 500, 600]
    assert tl.shifts == []


def test_insert_across_a_jump_in_the_clock_follows_its_start_key():
    # Recordings joined at 4.36 s -> 501.4 s (MPEG-TS at 25 fps): 3 frames inserted there were spread over the
    # jump, each on screen for two minutes (at 128.6, 252.9 and 377.1 s). A hole of about the frames asked for
    # is still filled evenly.
    t = np.concatenate([np.arange(75) * 3600, 497 * 90000 + np.arange(75, 150) * 3600]).astype(np.int64)
    tl = build_timeline(t, [_edit("i", "insert", 74, 75, 3)])
    assert list(tl.pts[75:79]) == [75 * 3600, 76 * 3600, 77 * 3600, t[75]] and tl.shifts == []
    holed = np.delete(np.arange(20) * 3600, [10, 11, 12])  # frames 10-12 missing: room for three
    tl = build_timeline(holed, [_edit("h", "insert", 9, 10, 3)])
    assert list(tl.pts[10:13]) == [10 * 3600, 11 * 3600, 12 * 3600] and tl.shifts == []


def test_pieces_cover_whole_gops_and_copy_the_rest():
    t = np.arange(40, dtype=np.int64) * 10
    tl = build_timeline(t, [_edit("r", "replace", 13, 16, 2)])
    gops = [Gop(0, 12, 0, 12), Gop(12, 24, 12, 24), Gop(24, 40, 24, 40)]
    pieces = plan_pieces(tl, gops, reencode_all=False)
    assert [(p.copy, p.first_frame, p.end_frame) for p in pieces] == [(True, 0, 12), (False, 12, 24), (True, 24, 40)]
    every = plan_pieces(tl, gops, reencode_all=True)
    assert [(p.copy, p.first_frame, p.end_frame) for p in every] == [(False, 0, 40)]


def test_insert_at_gop_end_reencodes_the_gop_of_its_start_keyframe():
    t = np.arange(40, dtype=np.int64) * 10
    tl = build_timeline(t, [_edit("i", "insert", 11, 12, 3)])
    gops = [Gop(0, 12, 0, 12), Gop(12, 24, 12, 24), Gop(24, 40, 24, 40)]
    pieces = plan_pieces(tl, gops, reencode_all=False)
    assert [(p.copy, p.first_frame, p.end_frame, p.shift) for p in pieces] == [
        (False, 0, 12, 0), (True, 12, 40, 30)
    ]  # fmt: skip


def test_pts_expression_is_exact_for_variable_timing():
    pts = [0, 512, 1024, 1600, 2000, 2400, 2800, 3900]
    expr = pts_expression(pts).replace("if(", "_if(").replace("lt(", "_lt(")
    helpers = {"_if": lambda c, a, b: a if c else b, "_lt": lambda a, b: a < b}
    assert [eval(expr, {**helpers, "N": n}) for n in range(len(pts))] == pts


def test_x264_sei_settings_map_to_parameters(real_clip):
    from semfi_batch.media.encode import probe_stream_facts

    facts = probe_stream_facts(real_clip("bbb_cuts_720p24_audio.mp4"))
    assert facts.x264_options and "crf=12.0" in facts.x264_options
    params = x264_params_from_sei(facts.x264_options)
    assert params is not None
    assert params["crf"] == "12.0" and params["ref"] == "5" and params["b-pyramid"] == "normal"
    assert params["chroma-qp-offset"] == "0"  # SEI says -2: psy-rd lowered the requested 0
    assert x264_params_from_sei("cqm=1 rc=crf crf=20") is None  # custom matrices cannot be reproduced
    sets = avcc_parameter_sets(facts.extradata)
    assert [s[0] & 0x1F for s in sets] == [7, 8]
    assert h264_parameter_set_ids(facts.extradata) == {0}
    assert h264_sps_timing(sets[0]) == (1, 48)  # x264 wrote time base 1/24


# --- splicing synthetic clips ------------------------------------------------------------------------------


def test_replace_and_insert_land_exactly_and_audio_follows(numbered_with_audio, tmp_path):
    src = numbered_with_audio
    before = file_md5(src)
    run = make_run(
        tmp_path / "run",
        src,
        [
            {"pair_id": "rep", "mode": "replace", "start": 14, "end": 18},
            {"pair_id": "ins", "mode": "insert", "start": 40, "end": 41, "gap": 3},
        ],
    )
    summary = splice_run(run)
    result = summary.results[0]
    assert result.output == run / "spliced" / "numbered.spliced.mp4"
    assert result.method == "smart cut" and 0 < result.frames_reencoded < 63
    frames = decode_rgb(result.output)
    assert len(frames) == 63
    expected = list(range(15)) + ["rep"] * 3 + list(range(18, 41)) + ["ins"] * 3 + list(range(41, 60))
    for i, want in enumerate(expected):
        if isinstance(want, int):
            assert frame_number(frames[i]) == want, f"output frame {i}"
        else:
            job = 0 if want == "rep" else 1
            k = i - (15 if want == "rep" else 41)
            assert solid(frames[i], job_colour(job, k)), f"output frame {i} should be {want} frame {k}"
    # Insert: 3 frames at 25 fps = 0.12 s more video and audio; AAC pads to whole 1024-sample frames.
    info_in, info_out = probe_video(src), probe_video(result.output)
    assert info_out.frame_count == 63
    assert abs((info_out.frame_times[-1] - info_in.frame_times[-1]) - 0.12) < 1e-6
    assert abs(audio_seconds(result.output) - audio_seconds(src) - 0.12) < 0.03
    assert audio_rms(result.output, 41 / 25 + 0.01, 44 / 25 - 0.01) < 30  # silence where time was added
    assert audio_rms(result.output, 1.0, 1.5) > 1000
    assert stream_kinds(result.output) == stream_kinds(src)
    assert file_md5(src) == before  # the source is never modified
    assert not [p.name for p in result.output.parent.iterdir() if p.name.startswith(".")]  # no leftovers


def test_replace_only_copies_audio_packets_untouched(numbered_with_audio, tmp_path):
    src = numbered_with_audio
    run = make_run(tmp_path / "run", src, [{"pair_id": "rep", "mode": "replace", "start": 30, "end": 35}])
    out = tmp_path / "out.mp4"
    assert main(["splice", str(run), "-o", str(out)]) == 0
    assert packet_table(out, "a:0") == packet_table(src, "a:0")
    assert abs(probe_video(out).duration - probe_video(src).duration) < 1e-6


def test_smart_cut_keeps_packets_outside_reencoded_gops(tmp_path):
    """A replace row in the middle of a longer clip (B-frames, 2 s GOPs, audio): every packet outside the
    re-encoded GOP is byte-identical to the source's, with the same timestamps and flags."""
    plain = tmp_path / "long_plain.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=12",
         "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
         "-bf", "3", "-pix_fmt", "yuv420p", str(plain)],
        check=True,
    )  # fmt: skip
    src = add_audio(plain, tmp_path / "long.mp4")
    run = make_run(tmp_path / "run", src, [{"pair_id": "mid", "mode": "replace", "start": 160, "end": 166}])
    result = splice_run(run).results[0]
    assert result.method == "smart cut"
    [touched] = [p for p in result.pieces if not p.copy]
    assert (touched.first_frame, touched.end_frame) == (150, 200)  # only the GOP holding frames 161-165
    src_packets, out_packets = packet_table(src), packet_table(result.output)
    assert len(src_packets) == len(out_packets) == 300
    outside = [i for i in range(300) if not touched.first_packet <= i < touched.end_packet]
    assert len(outside) == 250
    assert [out_packets[i] for i in outside] == [src_packets[i] for i in outside]
    assert [out_packets[i][3] for i in range(150, 200)] != [src_packets[i][3] for i in range(150, 200)]
    frames = decode_rgb(result.output)
    assert generated_positions(frames) == list(range(161, 166))
    assert packet_table(result.output, "a:0") == packet_table(src, "a:0")


def test_one_frame_gop_between_edits_in_matroska_is_smart_cut_frame_exact(tmp_path):
    """Matroska stores no decode times: after a seek the first packets (the B-frame delay) have none, and the
    concat demuxer let the next GOP's keyframe through a one-frame GOP's outpoint (a frame shown twice, caught
    by the check and re-encoded whole). Such a GOP between two edited ones is re-encoded with them instead;
    the rest is still copied, every frame in its place."""
    mp4 = numbered_clip(tmp_path / "n.mp4", 60)
    src = tmp_path / "n.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(mp4), "-c:v", "libx264", "-crf", "18", "-preset",
         "veryfast", "-bf", "2", "-g", "100", "-sc_threshold", "0", "-force_key_frames",
         "expr:eq(n,0)+eq(n,12)+eq(n,24)+eq(n,25)+eq(n,37)+eq(n,49)", "-pix_fmt", "yuv420p", str(src)],
        check=True,
    )  # fmt: skip
    gops = gop_index(read_packets(src, 0, probe_stream_facts(src).time_base))
    assert [(g.first_frame, g.end_frame) for g in gops][2:4] == [(24, 25), (25, 37)]  # a one-frame GOP at 24
    assert probe_stream_facts(src).codec == "h264" and probe_video(src).frame_count == 60
    run = make_run(
        tmp_path / "run",
        src,
        [
            {"pair_id": "rep", "mode": "replace", "start": 14, "end": 18},
            {"pair_id": "ins", "mode": "insert", "start": 28, "end": 29, "gap": 2},
        ],
    )
    result = splice_run(run).results[0]
    assert result.method == "smart cut", result.note
    assert [(p.copy, p.first_frame, p.end_frame) for p in result.pieces] == [
        (True, 0, 12), (False, 12, 37), (True, 37, 60)
    ]  # fmt: skip
    expected = [*range(15), (0, 0), (0, 1), (0, 2), *range(18, 29), (1, 0), (1, 1), *range(29, 60)]
    assert_spliced_frames(decode_rgb(result.output), expected)


def assert_spliced_frames(frames: np.ndarray, expected: list) -> None:
    """Each decoded output frame is what `expected` says: a source frame number (numbered clips) or (job number,
    k), generated frame k of that job of `make_run` (its solid colour)."""
    assert len(frames) == len(expected)
    for i, want in enumerate(expected):
        if isinstance(want, int):
            assert frame_number(frames[i]) == want, f"output frame {i}"
        else:
            assert solid(frames[i], job_colour(*want)), f"output frame {i} should be job {want[0]}'s frame {want[1]}"


def test_first_gop_reencoded_keeps_source_parameter_sets_for_the_rest(numbered_with_audio, tmp_path):
    run = make_run(
        tmp_path / "run", numbered_with_audio, [{"pair_id": "first", "mode": "replace", "start": 0, "end": 3}]
    )
    result = splice_run(run).results[0]
    assert result.method == "smart cut" and result.pieces[0].copy is False
    frames = decode_rgb(result.output)
    assert [frame_number(f) for f in frames[3:]] == list(range(3, 60))
    assert all(solid(frames[k], job_colour(0, k - 1)) for k in (1, 2))


def test_failed_and_missing_jobs_leave_their_ranges_untouched(numbered_with_audio, tmp_path, capsys):
    run = make_run(
        tmp_path / "run",
        numbered_with_audio,
        [
            {"pair_id": "ok", "mode": "replace", "start": 5, "end": 8},
            {"pair_id": "bad", "mode": "replace", "start": 20, "end": 25, "status": "failed"},
            {"pair_id": "gone", "mode": "insert", "start": 40, "end": 41, "gap": 2, "status": "missing"},
        ],
    )
    assert main(["splice", str(run)]) == 0
    err = capsys.readouterr().err
    assert "bad" in err and "backend exploded" in err and "gone" in err and "no finished job" in err
    frames = decode_rgb(run / "spliced" / "numbered.spliced.mp4")
    assert len(frames) == 60
    assert [frame_number(f) for f in frames[20:60]] == list(range(20, 60))
    assert generated_positions(frames) == [6, 7]


def test_overlapping_rows_keep_the_first(numbered_with_audio, tmp_path):
    run = make_run(
        tmp_path / "run",
        numbered_with_audio,
        [
            {"pair_id": "a", "mode": "replace", "start": 10, "end": 14},
            {"pair_id": "b", "mode": "replace", "start": 12, "end": 16},
        ],
    )
    summary = splice_run(run)
    assert [s.pair_id for s in summary.all_skipped] == ["b"]
    assert "overlaps a" in summary.all_skipped[0].why
    assert generated_positions(decode_rgb(summary.results[0].output)) == [11, 12, 13]


def test_reencode_flag_encodes_everything_with_the_same_result(numbered_with_audio, tmp_path):
    run = make_run(tmp_path / "run", numbered_with_audio, [{"pair_id": "r", "mode": "replace", "start": 30, "end": 33}])
    result = splice_run(run, out_dir=tmp_path / "full", options=SpliceOptions(reencode=True)).results[0]
    assert result.method == "full re-encode" and "--reencode" in result.note
    assert result.frames_reencoded == 60
    frames = decode_rgb(result.output)
    assert [frame_number(f) for i, f in enumerate(frames) if i not in (31, 32)] == [
        i for i in range(60) if i not in (31, 32)
    ]
    assert generated_positions(frames) == [31, 32]


def test_crossfade_fills_inserted_time_with_sound(numbered_with_audio, tmp_path):
    run = make_run(
        tmp_path / "run", numbered_with_audio, [{"pair_id": "ins", "mode": "insert", "start": 30, "end": 31, "gap": 5}]
    )
    result = splice_run(run, options=SpliceOptions(audio="crossfade")).results[0]
    assert "cross-fade" in result.audio_note
    assert abs(audio_seconds(result.output) - audio_seconds(numbered_with_audio) - 0.2) < 0.03
    assert audio_rms(result.output, 31 / 25 + 0.02, 36 / 25 - 0.02) > 1000  # no hole in the sound
    assert generated_positions(decode_rgb(result.output)) == [31, 32, 33, 34, 35]


def test_old_avi_codec_comes_back_in_its_own_codec(tmp_path):
    src = tmp_path / "old.avi"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x96:r=25:d=2",
         "-c:v", "msmpeg4v2", "-q:v", "2", str(src)],
        check=True,
    )  # fmt: skip
    run = make_run(tmp_path / "run", src, [{"pair_id": "r", "mode": "replace", "start": 10, "end": 14}])
    result = splice_run(run).results[0]
    assert result.method == "smart cut" and "msmpeg4v2" in result.note  # not H.264 in its place
    assert result.output.suffix == ".avi"
    assert probe_video(result.output).codec == "msmpeg4v2"
    frames = decode_rgb(result.output)
    assert len(frames) == 50 and generated_positions(frames) == [11, 12, 13]


def test_rows_from_the_real_run_engine(tmp_path):
    """The run folder made by `semfi-batch run --backend blend`, spliced: the output holds the job's frames."""
    clip = numbered_clip(tmp_path / "clip.mp4", 40, size="96x64")
    manifest = write_manifest(
        [{"pair_id": "p1", "source": "clip.mp4", "start_frame": 10, "end_frame": 15, "reason": "flash"}],
        tmp_path / "m.parquet",
    )
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--backend", "blend", "--quiet"]) == 0
    assert main(["splice", str(out), "--otio", str(tmp_path / "t.otio")]) == 0
    frames = decode_rgb(out / "spliced" / "clip.spliced.mp4")
    assert len(frames) == 40
    assert [frame_number(f) for f in frames[:11]] == list(range(11))
    assert [frame_number(f) for f in frames[15:]] == list(range(15, 40))
    from semfi_batch.media.frames import read_image

    for k in range(4):
        png = read_image(out / "jobs" / "p1" / "frames" / f"{k + 1:06d}.png").astype(float)
        assert np.abs(frames[11 + k].astype(float) - png).mean() < 3.0
    assert clip.exists()


def test_otio_and_edl_describe_the_edits(numbered_with_audio, tmp_path):
    import opentimelineio as otio

    run = make_run(
        tmp_path / "run",
        numbered_with_audio,
        [
            {"pair_id": "rep", "mode": "replace", "start": 5, "end": 9, "reason": "flash"},
            {"pair_id": "ins", "mode": "insert", "start": 30, "end": 31, "gap": 2, "reason": "cut"},
        ],
    )
    otio_path, edl_path = tmp_path / "edits.otio", tmp_path / "edits.edl"
    assert main(["splice", str(run), "--otio", str(otio_path), "--edl", str(edl_path)]) == 0
    tl = otio.adapters.read_from_file(str(otio_path))
    video = tl.tracks[0]
    kinds = [c.metadata["semfi_batch"]["kind"] for c in video]
    assert kinds == ["source", "generated", "source", "generated", "source"]
    generated = [c.metadata["semfi_batch"] for c in video if c.metadata["semfi_batch"]["kind"] == "generated"]
    assert [g["reason"] for g in generated] == ["flash", "cut"]
    assert [g["pair_id"] for g in generated] == ["rep", "ins"]
    assert [int(c.source_range.duration.value) for c in video] == [6, 3, 22, 2, 29]
    assert int(video.duration().value) == 65 - 3  # 62 output frames
    audio = tl.tracks[1]
    assert [type(c).__name__ for c in audio] == ["Clip", "Gap", "Clip"]
    assert abs(audio[1].duration().to_seconds() - 0.08) < 1e-6
    edl = edl_path.read_text()
    assert edl.count(" V     C ") == 5 and "REP" in edl and "INS" in edl


def test_bad_inputs_give_one_clear_error(tmp_path, numbered_with_audio, capsys):
    assert main(["splice", str(tmp_path / "nowhere")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["splice", str(tmp_path / "empty")]) == 2
    assert "no manifest.parquet" in capsys.readouterr().err
    run = make_run(tmp_path / "run", numbered_with_audio, [{"pair_id": "r", "mode": "replace", "start": 5, "end": 9}])
    assert main(["splice", str(run), "-o", str(numbered_with_audio)]) == 2
    assert "sources are never modified" in capsys.readouterr().err
    assert main(["splice", str(run), "--audio", "echo"]) == 2  # a usage error, as Typer's own
    assert "--audio must be one of" in capsys.readouterr().err
    # An output no container is named by is refused before the splice (it failed at the last step)
    assert main(["splice", str(run), "-o", str(tmp_path / "out.txt")]) == 2
    assert "knows no container by the name .txt" in capsys.readouterr().err


def test_gop_index_merges_open_gops():
    from fractions import Fraction

    from semfi_batch.media.encode import PacketIndex

    # Decode order: I0 P3 B1 B2 | I6(open: B4 B5 shown before it) P9 B7 B8
    pts = np.array([0, 3, 1, 2, 6, 4, 5, 9, 7, 8])
    key = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], bool)
    packets = PacketIndex(Path("x"), Fraction(1, 25), pts, pts - 2, key, np.zeros(10, bool), np.ones(10, np.int64))
    assert gop_index(packets) == [Gop(0, 10, 0, 10)]
    key[4] = True
    pts2 = np.array([0, 3, 1, 2, 4, 7, 5, 6, 9, 8])  # closed: I4 shown first in its GOP
    packets = PacketIndex(Path("x"), Fraction(1, 25), pts2, pts2 - 2, key, np.zeros(10, bool), np.ones(10, np.int64))
    assert gop_index(packets) == [Gop(0, 4, 0, 4), Gop(4, 10, 4, 10)]


def test_packet_reader_matches_probe_frame_times(numbered_with_audio):
    from semfi_batch.media.encode import probe_stream_facts

    facts = probe_stream_facts(numbered_with_audio)
    packets = read_packets(numbered_with_audio, facts.index, facts.time_base)
    info = probe_video(numbered_with_audio)
    np.testing.assert_allclose(packets.frame_pts * float(facts.time_base) - facts.format_start, info.frame_times)


def test_subtitles_chapters_and_tags_follow_an_insert(tmp_path):
    """Matroska with audio, an SRT track, two chapters and a title: everything after the insert point moves
    by the inserted time, everything before stays, and nothing is lost."""
    plain = numbered_clip(tmp_path / "plain.mp4", 75)
    with_audio = add_audio(plain, tmp_path / "audio.mp4")
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,000\nbefore\n\n2\n00:00:02,000 --> 00:00:02,400\nafter\n")
    meta = tmp_path / "meta.txt"
    meta.write_text(
        ";FFMETADATA1\ntitle=Demo reel\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1800\ntitle=Opening\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1800\nEND=3000\ntitle=Ending\n"
    )
    src = tmp_path / "movie.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(with_audio), "-i", str(srt), "-i", str(meta),
         "-map", "0", "-map", "1", "-map_metadata", "2", "-map_chapters", "2", "-c", "copy", "-c:s", "srt",
         "-metadata:s:s:0", "language=fra", str(src)],
        check=True,
    )  # fmt: skip
    run = make_run(tmp_path / "run", src, [{"pair_id": "ins", "mode": "insert", "start": 30, "end": 31, "gap": 5}])
    result = splice_run(run).results[0]
    assert result.method == "smart cut"
    probe = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-of", "json", "-show_chapters", "-show_format", "-show_streams",
             "-show_packets", "-select_streams", "s", str(result.output)],
            capture_output=True, check=True,
        ).stdout
    )  # fmt: skip
    assert probe["format"]["tags"].get("title") == "Demo reel"
    # Matroska cannot start re-encoded AAC (encoder priming) before zero: the muxer moves every stream by the
    # priming together, so times are compared to the first video frame, and chapters to within one AAC frame.
    chapters = [(c["tags"]["title"], float(c["start_time"])) for c in probe["chapters"]]
    assert [c[0] for c in chapters] == ["Opening", "Ending"]
    assert chapters[0][1] == 0.0 and abs(chapters[1][1] - 2.0) < 0.025  # 1.8 s + the inserted 0.2 s
    [sub] = probe["streams"]
    assert sub["codec_name"] == "subrip" and sub["tags"].get("language") == "fra"

    def cues_from_first_frame(path: Path) -> list[float]:
        first_video = probe_video(path).start_time + probe_video(path).frame_times[0]
        cues = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "s", "-show_entries", "packet=pts_time", "-of", "csv=p=0",
             str(path)],
            capture_output=True, check=True, text=True,
        ).stdout.split()  # fmt: skip
        return [round(float(c) - first_video, 3) for c in cues]

    before, after = cues_from_first_frame(src), cues_from_first_frame(result.output)
    assert after == [before[0], round(before[1] + 0.2, 3)]  # the cue after the insert point moved by 0.2 s
    assert [k for k, _, _ in stream_kinds(result.output)] == ["video", "audio", "subtitle"]
    assert generated_positions(decode_rgb(result.output)) == [31, 32, 33, 34, 35]


def test_every_source_of_the_run_gets_its_own_output(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    a, b = numbered_clip(tmp_path / "a" / "shot.mp4", 30), numbered_clip(tmp_path / "b" / "shot.mp4", 30)
    run = tmp_path / "run"
    make_run(run, a, [{"pair_id": "a1", "mode": "replace", "start": 3, "end": 6}])
    rows = [
        {"pair_id": "a1", "source": str(a), "start_frame": 3, "end_frame": 6, "mode": "replace"},
        {"pair_id": "b1", "source": str(b), "start_frame": 10, "end_frame": 12, "mode": "replace"},
        {"pair_id": "img", "start_image": "x.png", "end_image": "y.png", "gap_frames": 2},
    ]
    write_manifest(rows, run / "manifest.parquet")  # b1 has no job folder: left out
    assert main(["splice", str(run), "-o", str(tmp_path / "one.mp4")]) == 2
    assert "2 source videos" in capsys.readouterr().err
    summary = splice_run(run, out_dir=tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["shot.2.spliced.mp4", "shot.spliced.mp4"]
    assert {s.pair_id: s.why.split(" (")[0] for s in summary.all_skipped} == {
        "img": "image pair",
        "b1": "no finished job",
    }
    outputs = {r.source: r.output for r in summary.results}
    assert generated_positions(decode_rgb(outputs[a])) == [4, 5]
    assert [frame_number(f) for f in decode_rgb(outputs[b])] == list(range(30))


def content_lag(reference: Path, candidate: Path, at: float, span: float = 0.4) -> float:
    """How much later (s, on the player's clock) the reference's audio from `at` on is heard in `candidate`,
    found by cross-correlating decoded noise."""

    def heard(path: Path) -> tuple[float, np.ndarray]:
        first = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-read_intervals", "%+#8", "-show_frames",
             "-show_entries", "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
            capture_output=True, check=True, text=True,
        ).stdout.split()[0]  # fmt: skip
        pcm = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", "48000",
             "-f", "s16le", "-"],
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        return float(first), np.frombuffer(pcm, np.int16).astype(float)

    (t_ref, ref), (t_can, can) = heard(reference), heard(candidate)
    start = int((at - t_ref) * 48000)
    piece = ref[start : start + int(span * 48000)]
    base = int((at - t_can) * 48000)
    lags = range(-480, 480 + int(0.3 * 48000))
    best = max(lags, key=lambda lag: float(np.dot(piece, can[base + lag : base + lag + piece.size])))
    return best / 48000


def test_vp9_opus_insert_keeps_picture_and_sound_together(tmp_path):
    """Opus primes its output and Matroska signals it as codec delay: the rebuilt audio must still be heard
    at the source's times before the insert point and exactly the inserted time later after it."""
    src = tmp_path / "clip.webm"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=160x96:r=25:d=3", "-f", "lavfi",
         "-i", "anoisesrc=d=3:c=pink:r=48000", "-c:v", "libvpx-vp9", "-g", "25", "-b:v", "300k", "-c:a", "libopus",
         str(src)],
        check=True,
    )  # fmt: skip
    run = make_run(tmp_path / "run", src, [{"pair_id": "ins", "mode": "insert", "start": 35, "end": 36, "gap": 5}])
    result = splice_run(run).results[0]
    assert result.method == "smart cut" and stream_kinds(result.output) == stream_kinds(src)
    t_src, t_out = probe_video(src), probe_video(result.output)
    assert t_out.start_time + t_out.frame_times[0] == pytest.approx(t_src.start_time + t_src.frame_times[0], abs=1e-3)
    assert content_lag(src, result.output, at=0.5) == pytest.approx(0.0, abs=1 / 48000)
    assert content_lag(src, result.output, at=2.0) == pytest.approx(0.2, abs=1 / 48000)
    assert generated_positions(decode_rgb(result.output)) == [36, 37, 38, 39, 40]


def test_leftovers_of_a_killed_splice_are_removed(numbered_with_audio, tmp_path):
    run = make_run(tmp_path / "run", numbered_with_audio, [{"pair_id": "r", "mode": "replace", "start": 5, "end": 8}])
    out_dir = run / "spliced"
    out_dir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    (out_dir / f".splice-{dead.pid}-abc").mkdir()
    (out_dir / f".splice-{dead.pid}-abc" / "seg0001.mp4").write_bytes(b"half")
    (out_dir / f".numbered.spliced.tmp{dead.pid}.mp4").write_bytes(b"half")
    (out_dir / f".splice-{os.getpid()}-live").mkdir()  # a running splice's folder stays
    splice_run(run)
    assert sorted(p.name for p in out_dir.iterdir()) == [f".splice-{os.getpid()}-live", "numbered.spliced.mp4"]


@pytest.mark.parametrize("name", ["plain", "through a folder not made yet", "hard link"])
def test_splice_never_writes_over_a_source_by_any_name(tmp_path, monkeypatch, capsys, name):
    # `-o nosuchdir/../src.mp4` was taken for a new file (it does not exist yet as written): its folder was
    # made and the source replaced, exit 0.
    src = numbered_clip(tmp_path / "src.mp4", 24)
    run = make_run(tmp_path / "run", src, [{"pair_id": "rep", "mode": "replace", "start": 5, "end": 8}])
    monkeypatch.chdir(tmp_path)
    before = src.read_bytes()
    output = {"plain": "src.mp4", "through a folder not made yet": "nosuchdir/../src.mp4", "hard link": "link.mp4"}
    if name == "hard link":
        os.link(src, tmp_path / "link.mp4")
    assert main(["splice", str(run), "-o", output[name]]) == 2
    assert "sources are never modified" in capsys.readouterr().err
    assert src.read_bytes() == before and not (tmp_path / "nosuchdir").exists()
