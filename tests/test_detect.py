"""`semfi-batch detect`: cuts, damaged stretches and strides found frame-exactly in synthetic lavfi clips
whose frames carry their own number, and on real footage against PySceneDetect's own CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.detect import DetectOptions, DetectOptionsError, detect_video, timestamp_holes
from semfi_batch.manifest import load_manifest
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import extract_frame
from tests.media_fixtures import BARCODE, LOOKS, concat_shots, decode_all, frame_number, make_clip, shot

# --- clips (made once per module) ---------------------------------------------------------------------

# cuts.mp4, 313 frames at 25 fps: A | cut@50 | B, 1 s dissolve into C | cut@175 | D fading out, E fading in
# (a dip through black at 225) | cut@275 | F. Every frame shows its own index, except in the dissolve.
CUTS = [50, 175, 275]
# Shots as stride sees them: split at hard cuts only (a fade or dissolve is continuous and may be re-timed).
SHOTS = [(0, 49), (50, 174), (175, 274), (275, 312)]


def cuts_graph() -> str:
    return ";".join(
        [
            f"{shot(50, look=LOOKS[0], first=0)}[a]",
            f"{shot(75, look=LOOKS[1], first=50)}[b]",
            f"{shot(75, look=LOOKS[2], first=100)}[c]",
            f"{shot(50, look=LOOKS[3], first=175)},fade=t=out:s=38:n=12[d]",
            f"{shot(50, look=LOOKS[4], first=225)},fade=t=in:s=0:n=12[e]",
            f"{shot(38, look=LOOKS[0], first=275)}[f]",
            "[b][c]xfade=transition=fade:duration=1:offset=2[bc]",
            "[a][bc][d][e][f]concat=n=5:v=1:a=0[out]",
        ]
    )


# damage.mp4, 170 frames: shot A (frames 0-99) | cut | shot B, numbered as made, then damaged:
# black 30-31, a flash at 60, 80-83 frozen on 79, a black frame on the cut (100), frames 130-132 dropped
# (a hole in the timestamps), black 150 next to dropped 151-152.
def damage_graph() -> str:
    return (
        concat_shots([shot(100, look=LOOKS[0]), shot(75, look=LOOKS[1])]) + f";[cat]{BARCODE},"
        "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(n,30,31)+eq(n,100)+eq(n,150)',"
        "lutyuv=y='min(val+110,255)':enable='eq(n,60)',split[x1][x2];"
        "[x1][x2]freezeframes=first=80:last=83:replace=79,"
        "select='not(between(n,130,132)+between(n,151,152))'[out]"
    )


def made_number(index: int) -> int:
    """The number stamped on frame `index` of damage.mp4 (frames 130-132 and 151-152 were dropped)."""
    return index if index < 130 else index + 3 if index < 148 else index + 5


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("detect_clips")
    return {
        "cuts": make_clip(folder / "cuts.mp4", cuts_graph()),
        "damage": make_clip(folder / "damage.mp4", damage_graph(), keep_timestamps=True),
    }


def detect_cli(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "m.parquet"
    return main(["detect", *args, "-o", str(out)]), out


def stamped(info, index: int) -> int:
    """The number drawn on the frame that `run` extracts for `index`."""
    return frame_number(extract_frame(info, index))


# --- cuts -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_cuts_are_insert_rows_on_the_frames_around_each_hard_cut(clips, tmp_path, detector):
    code, out = detect_cli(tmp_path, str(clips["cuts"]), "--mode", "cuts", "--detector", detector)
    assert code == 0
    manifest = load_manifest(out)
    rows = manifest.pairs
    # Exactly the hard cuts: the dissolve (frames 100-124) and the dip through black (225) are not cuts.
    assert [(p.start_frame, p.end_frame) for p in rows] == [(c - 1, c) for c in CUTS]
    assert {p.mode for p in rows} == {"insert"} and {p.gap_frames for p in rows} == {11}
    assert {"reason", "score", "start_time", "end_time", "content_val"} <= set(manifest.extra_columns)
    info = probe_video(clips["cuts"])
    for p in rows:
        assert p.extras["reason"] == "cut" and p.extras["score"] > 0 and p.extras["content_val"] > 27
        assert p.extras["start_time"] == pytest.approx(info.frame_time(p.start_frame))
        assert p.extras["end_time"] == pytest.approx(info.frame_time(p.end_frame))
        # The frames `run` will extract are the last frame before and the first frame after the cut.
        assert stamped(info, p.start_frame) == p.start_frame and stamped(info, p.end_frame) == p.end_frame


def test_transition_frames_and_thresholds_are_options(clips, tmp_path):
    code, out = detect_cli(tmp_path, str(clips["cuts"]), "--transition-frames", "5", "--threshold", "200")
    assert code == 0 and load_manifest(out).pairs == []  # nothing scores a ratio of 200
    code, out = detect_cli(tmp_path, str(clips["cuts"]), "--transition-frames", "5", "--keep-gradual")
    pairs = load_manifest(out).pairs
    assert {p.gap_frames for p in pairs} == {5}
    assert 225 in [p.end_frame for p in pairs]  # the dip through black, kept on request
    # A minimum shot length longer than shot A drops the cut at 50 (PySceneDetect's own rule).
    code, out = detect_cli(tmp_path, str(clips["cuts"]), "--min-scene-len", "2.5s")
    assert [p.end_frame for p in load_manifest(out).pairs] == [175, 275]


def test_odd_frame_rate_cuts_are_exact(tmp_path):
    rate = "179/6"  # 29.833 fps, as ../shared/footage/clips/bottle_640x360_29.83fps.mp4
    clip = make_clip(
        tmp_path / "odd.mp4",
        f"{shot(47, rate=rate, first=0)}[a];{shot(40, rate=rate, look=LOOKS[1], first=47)}[b];"
        "[a][b]concat=n=2:v=1:a=0[out]",
    )
    det = detect_video(clip, DetectOptions(mode="cuts"))
    info = det.info
    assert info.avg_fps == pytest.approx(179 / 6)
    assert [(r.start_frame, r.end_frame) for r in det.rows] == [(46, 47)]
    assert stamped(info, 46) == 46 and stamped(info, 47) == 47
    assert det.rows[0].extras["end_time"] == pytest.approx(47 * 6 / 179, abs=1e-3)


def test_variable_frame_rate_is_placed_by_timestamps(tmp_path):
    # 40 frames at 25 fps, then a different shot at 10 fps: frame times, not a constant rate, give the index.
    clip = make_clip(
        tmp_path / "vfr.mp4",
        f"{shot(40, rate='25', first=0)}[a];{shot(20, rate='10', look=LOOKS[2], first=40)}[b];"
        "[a][b]concat=n=2:v=1:a=0[out]",
        keep_timestamps=True,
    )
    info = probe_video(clip)
    steps = np.diff(info.frame_times)
    assert steps[:30].max() < 0.05 and steps[45:].min() > 0.09  # really two rates in one file
    det = detect_video(clip, DetectOptions(mode="cuts"))
    assert [(r.start_frame, r.end_frame) for r in det.rows] == [(39, 40)]
    assert stamped(info, 39) == 39 and stamped(info, 40) == 40
    # A change of frame rate is not a hole in the timestamps.
    assert detect_video(clip, DetectOptions(mode="damage")).rows == []


# --- damage ---------------------------------------------------------------------------------------------


def test_damage_rows_are_found_frame_exact_and_nothing_else(clips, tmp_path):
    code, out = detect_cli(tmp_path, str(clips["damage"]), "--mode", "damage")
    assert code == 0
    pairs = load_manifest(out).pairs
    found = [(p.start_frame, p.end_frame, p.mode, p.gap_frames, p.extras["reason"]) for p in pairs]
    assert found == [
        (29, 32, "replace", 2, "black"),
        (59, 61, "replace", 1, "flash"),
        (79, 84, "replace", 4, "freeze"),
        (129, 130, "insert", 3, "timestamp_gap"),  # 3 frames missing from the file between 129 and 130
        (146, 148, "insert", 3, "black+timestamp_gap"),  # black 147 plus 2 missing, merged into one row
    ]
    assert [(p.extras["damaged_frames"], p.extras["missing_frames"]) for p in pairs] == [
        (2, 0), (1, 0), (4, 0), (0, 3), (1, 2),
    ]  # fmt: skip
    info = probe_video(clips["damage"])
    for p in pairs:
        # Keyframes are the last good frame before and the first good frame after, exactly.
        assert stamped(info, p.start_frame) == made_number(p.start_frame)
        assert stamped(info, p.end_frame) == made_number(p.end_frame)


def test_damage_is_never_bridged_across_a_cut(clips):
    det = detect_video(clips["damage"], DetectOptions(mode="damage"))
    assert [c.index for c in det.cuts] == [101]  # the good frames either side of black frame 100
    assert all(not r.start_frame < 100 < r.end_frame for r in det.rows)
    assert any("frame 100 spans a cut" in n for n in det.notes)


def test_max_gap_bounds_a_row(clips):
    det = detect_video(clips["damage"], DetectOptions(mode="damage", max_gap=3))
    assert [r.gap_frames for r in det.rows] == [2, 1, 3, 3]  # the 4-frame freeze is left out
    assert any("freeze at frames 80-83 needs 4 frames, more than --max-gap 3" in n for n in det.notes)


def test_timestamp_holes_follow_the_local_frame_rate():
    even = np.arange(40) * 0.04
    assert timestamp_holes(even) == []
    holed = np.delete(even, [10, 11])
    assert [(k, missing) for k, missing, _ in timestamp_holes(holed)] == [(10, 2)]
    slowing = np.concatenate([np.arange(30) * 0.04, 1.2 + np.arange(1, 30) * 0.1])  # 25 fps, then 10 fps
    assert timestamp_holes(slowing) == []


def test_undecodable_frame_becomes_a_replace_row(tmp_path):
    clip = tmp_path / "mjpeg.avi"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"{shot(40)}", "-c:v", "mjpeg", str(clip)],
        check=True,
    )
    packets = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pos,size", "-of", "csv=p=0",
         str(clip)], capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    size, pos = (int(v) for v in packets[20].split(","))
    data = bytearray(clip.read_bytes())
    data[pos : pos + size] = bytes(size)  # frame 20's JPEG is wiped: the decoder drops it
    clip.write_bytes(bytes(data))
    det = detect_video(clip, DetectOptions(mode="damage"))
    # An AVI's frames are what its decoder delivers (packets carry no presentation times): the wiped frame is
    # not one of them, and the hole it leaves in the timestamps is filled in place.
    assert det.info.frame_count == 39 and det.frames_decoded == 39
    rows = [(r.start_frame, r.end_frame, r.mode, r.gap_frames, r.reason) for r in det.rows]
    assert rows == [(19, 20, "insert", 1, "timestamp_gap")]


# --- stride ---------------------------------------------------------------------------------------------


def test_stride_rows_stay_inside_shots(clips, tmp_path):
    code, out = detect_cli(tmp_path, str(clips["cuts"]), "--mode", "stride", "--every", "4")
    assert code == 0
    pairs = load_manifest(out).pairs
    expected = [(s, s + 4) for first, last in SHOTS for s in range(first, last - 3, 4)]
    assert [(p.start_frame, p.end_frame) for p in pairs] == expected
    assert {p.mode for p in pairs} == {"replace"} and {p.gap_frames for p in pairs} == {3}
    assert all(not p.start_frame < c <= p.end_frame for p in pairs for c in CUTS)
    info = probe_video(clips["cuts"])
    for p in pairs[:3] + pairs[-3:]:
        assert stamped(info, p.start_frame) == p.start_frame and stamped(info, p.end_frame) == p.end_frame


def test_stride_on_variable_frame_rate_footage_extracts_the_named_frames(real_clip):
    path = real_clip("fire_vfr_handheld_720p_audio.mp4")
    det = detect_video(path, DetectOptions(mode="stride", every=4, analysis_width=128))
    assert [(r.start_frame, r.end_frame) for r in det.rows] == [(s, s + 4) for s in range(0, 21, 4)]
    sequential = decode_all(path)
    for r in det.rows[::2]:
        assert np.array_equal(extract_frame(det.info, r.start_frame), sequential[r.start_frame])
        assert r.extras["start_time"] == pytest.approx(det.info.frame_time(r.start_frame))


# --- real footage ---------------------------------------------------------------------------------------


def scenedetect_cli_cuts(path: Path, work: Path) -> list[int]:
    """PySceneDetect's own CLI (detect-adaptive) cut list, mapped to our frame indices by timestamp."""
    exe = Path(sys.executable).with_name("scenedetect")
    args = [str(exe), "-q", "-i", str(path), "-o", str(work), "detect-adaptive", "list-scenes", "-s"]
    subprocess.run([*args, "-f", "scenes.csv"], check=True, capture_output=True)
    with open(work / "scenes.csv", newline="") as fh:
        starts = [float(row["Start Time (seconds)"]) for row in csv.DictReader(fh)][1:]
    rel = probe_video(path).frame_times - probe_video(path).frame_times[0]
    return [int(np.argmin(np.abs(rel - t))) for t in starts]


def test_real_cuts_match_pyscenedetect_cli_within_one_frame(real_clip, tmp_path):
    path = real_clip("bbb_cuts_720p24_audio.mp4")
    theirs = scenedetect_cli_cuts(path, tmp_path)
    assert len(theirs) == 6
    det = detect_video(path, DetectOptions(mode="cuts"))
    ours = [c.index for c in det.cuts]
    assert len(ours) == 6
    assert all(abs(a - b) <= 1 for a, b in zip(theirs, ours, strict=True))
    # And the keyframes are the frames on either side: the cut is between them, not inside a shot.
    r = det.rows[0]
    a, b = (extract_frame(det.info, i).astype(float) for i in (r.start_frame, r.end_frame))
    before = extract_frame(det.info, r.start_frame - 1).astype(float)
    assert np.abs(a - b).mean() > 5 * np.abs(before - a).mean()


def test_real_fades_and_dissolves_are_not_cuts(real_clip):
    det = detect_video(real_clip("bbb_720p24_30s_vp8_vorbis.webm"), DetectOptions(mode="cuts"))
    assert [c.index for c in det.cuts] == [283, 376, 551]
    # PySceneDetect reports 31 (inside the fade-in from black) and 139 (a dissolve) as cuts too.
    assert {31, 139} <= {c.index for c in det.gradual}
    assert all(c.correlation > 0.9 for c in det.gradual if c.index in (31, 139))


def test_real_repeated_frames_of_a_frame_rate_conversion_are_found(real_clip):
    # This clip was converted from 24 to 25 fps by repeating one frame a second (frames 7, 32, 57, ...).
    det = detect_video(real_clip("bbb_720p25_5s_aac51.mp4"), DetectOptions(mode="damage"))
    assert len(det.rows) >= 3
    for r in det.rows:
        assert (r.reason, r.mode, r.gap_frames) == ("freeze", "replace", 1)
        assert (r.start_frame + 1) % 25 == 7


def test_clean_real_footage_has_no_damage(real_clip):
    det = detect_video(real_clip("bbb_cuts_720p24_audio.mp4"), DetectOptions(mode="damage"))
    assert det.rows == [] and len(det.cuts) == 6


# --- several videos, errors, progress ---------------------------------------------------------------------


def test_unreadable_video_is_reported_and_the_others_go_on(clips, tmp_path, capsys):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    code, out = detect_cli(tmp_path, str(bogus), str(clips["cuts"]))
    err = capsys.readouterr().err
    assert code == 1
    assert "notes.mp4" in err and "1 of 2 videos could not be read" in err and "Traceback" not in err
    manifest = load_manifest(out)
    assert len(manifest.pairs) == 3 and {p.source.name for p in manifest.pairs} == {"cuts.mp4"}


def test_nothing_readable_writes_no_manifest(tmp_path, capsys):
    code, out = detect_cli(tmp_path, str(tmp_path / "missing.mp4"))
    assert code == 1 and not out.exists()
    assert "no manifest written" in capsys.readouterr().err


def test_two_videos_with_the_same_name_get_distinct_pair_ids(clips, tmp_path):
    other = tmp_path / "again"
    other.mkdir()
    copy = other / "cuts.mp4"
    copy.write_bytes(clips["cuts"].read_bytes())
    code, out = detect_cli(tmp_path, str(clips["cuts"]), str(copy))
    pairs = load_manifest(out).pairs
    assert code == 0 and len(pairs) == 6 and len({p.pair_id for p in pairs}) == 6


def test_no_rows_still_writes_a_valid_manifest(tmp_path):
    clip = make_clip(tmp_path / "one_shot.mp4", f"{shot(30)}[out]")
    code, out = detect_cli(tmp_path, str(clip))
    assert code == 0 and load_manifest(out).pairs == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "stride"], "needs --every"),
        (["--every", "3"], "--every only applies"),
        (["--mode", "stride", "--every", "1"], "--every must be between 2"),
        (["--min-scene-len", "soon"], "--min-scene-len must be frames"),
        (["--max-gap", "0"], "--max-gap must be between 1"),
    ],
)
def test_bad_options_are_one_clear_error(clips, tmp_path, capsys, args, message):
    code, out = detect_cli(tmp_path, str(clips["cuts"]), *args)
    assert code == DetectOptionsError.exit_code and message in capsys.readouterr().err and not out.exists()


def test_progress_reports_every_video_to_its_end(clips):
    seen: list[tuple[int, int]] = []
    det = detect_video(clips["cuts"], DetectOptions(), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (313, 313) and det.frames_decoded == 313
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def slow_shots_clip(path: Path) -> Path:
    """Two slow shots (a sine pattern drifting 0.08 and 0.1 pixel a frame: luma steps well under 1) around a
    testsrc2 shot, cut at 40 and 80; frame 20 of the first slow shot repeats frame 19 (lossless, so exactly)."""
    slow1 = "nullsrc=s=160x120:r=25:d=2,geq=lum='128+80*sin(2*PI*(X+N*0.08)/40)':cb=128:cr=128"
    slow2 = "nullsrc=s=160x120:r=25:d=2,geq=lum='120+70*sin(2*PI*(Y+N*0.1)/30)':cb=100:cr=150"
    shots = [f"{s},trim=end_frame=40,setpts=PTS-STARTPTS,format=yuv420p" for s in (slow1, slow2)]
    graph = (
        f"{shots[0]}[a];{shot(40, look='negate')}[b];{shots[1]}[c];[a][b][c]concat=n=3:v=1:a=0,split[x1][x2];"
        "[x1][x2]freezeframes=first=20:last=20:replace=19[out]"
    )
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-filter_complex", graph, "-map", "[out]"]
    subprocess.run([*args, "-c:v", "libx264", "-qp", "0", "-g", "30", str(path)], check=True)
    return path


def test_freeze_in_a_slow_shot_is_found_and_freeze_threshold_leaves_cuts_alone(tmp_path):
    clip = slow_shots_clip(tmp_path / "slow.mp4")
    found = {ft: detect_video(clip, DetectOptions(mode="damage", freeze_threshold=ft)) for ft in (0.5, 2.0)}
    rows = [(r.start_frame, r.end_frame, r.reason) for r in found[0.5].rows]
    assert rows == [(19, 21, "freeze")]  # judged against the shot's own (slow) motion
    assert [c.index for c in found[0.5].cuts] == [c.index for c in found[2.0].cuts] == [40, 80]


def test_a_cut_after_frames_that_did_not_decode_generates_over_all_of_them():
    # Frames between the keys of a cut row did not decode; an insert keeps every frame, so the row must
    # generate at least as many (with 11 as before, `run` refused the manifest detect had written).
    from semfi_batch.detect.options import Cut
    from semfi_batch.detect.scan import _cut_rows

    decoded = np.ones(60, bool)
    decoded[20:40] = False  # 20 frames before the cut at 40 did not decode
    cuts = [Cut(40, 5.0, 40.0, 0.1, 50.0, 30.0), Cut(50, 5.0, 40.0, 0.1, 50.0, 30.0)]
    rows = _cut_rows(cuts, decoded, DetectOptions(mode="cuts"))
    assert [(r.start_frame, r.end_frame, r.gap_frames) for r in rows] == [(19, 40, 20), (49, 50, 11)]
