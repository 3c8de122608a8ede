import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semfi_batch.cli import main
from semfi_batch.errors import ManifestError
from semfi_batch.manifest import load_manifest, write_manifest
from semfi_batch.media.frames import write_png
from semfi_batch.plan import default_seed


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(1)
    for name, (h, w) in {"a.png": (24, 32), "b.png": (24, 32), "big.png": (30, 40)}.items():
        write_png(tmp_path / name, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return tmp_path


def test_valid_manifest_defaults(images, clip_factory):
    clip = clip_factory(20)
    path = write_manifest(
        [
            {"pair_id": "img", "start_image": "a.png", "end_image": "b.png", "gap_frames": 3, "shot": "A"},
            {"pair_id": "vid", "source": str(clip), "start_frame": 2, "end_frame": 6, "shot": "B"},
        ],
        images / "m.parquet",
    )
    m = load_manifest(path)
    img, vid = m.pairs
    assert (img.mode, img.gap_frames, img.keyframe_size, img.start_image) == ("insert", 3, (32, 24), images / "a.png")
    assert (vid.mode, vid.gap_frames, vid.keyframe_size) == ("replace", 3, (64, 48))
    assert vid.seed == default_seed("vid")
    assert m.extra_columns == ["shot"] and img.extras == {"shot": "A"}
    assert main(["manifest", "validate", str(path)]) == 0


# (row dict, column named, words in the message). Rows are checked one at a time, at row index 1 after a good row.
BAD_ROWS = [
    ({"pair_id": None, "start_image": "a.png", "end_image": "b.png", "gap_frames": 1}, "pair_id", "required"),
    ({"pair_id": "x/y", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1}, "pair_id", "folder"),
    ({"pair_id": "..", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1}, "pair_id", "'..'"),
    ({"pair_id": "p1\n", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1}, "pair_id", "folder"),
    ({"pair_id": "ok", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1}, "pair_id", "duplicate of row 0"),
    ({"pair_id": "p", "start_image": "missing.png", "end_image": "b.png", "gap_frames": 1}, "start_image", "not found"),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "broken.png", "gap_frames": 1}, "end_image", "cannot read"),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "big.png", "gap_frames": 1}, "end_image", "differs"),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "b.png"}, "gap_frames", "required for insert"),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": -2}, "gap_frames", "between 1"),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 0}, "gap_frames", "between 1"),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 10**7}, "gap_frames", "between 1"),
    (
        {"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1, "mode": "replace"},
        "mode",
        "needs a video",
    ),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1, "mode": "warp"}, "mode", "one of"),
    (
        {"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1, "width": -4, "height": 8},
        "width",
        "positive",
    ),
    (
        {"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1, "width": 16},
        "height",
        "together",
    ),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1, "steps": 0}, "steps", "positive"),
    (
        {"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1, "backend": "magic"},
        "backend",
        "unknown backend",
    ),
    ({"pair_id": "p", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1, "seed": -1}, "seed", "between 0"),
    (  # an insert keeps every frame: fewer generated frames than it spans would drop source frames
        {"pair_id": "p", "source": "CLIP", "start_frame": 3, "end_frame": 9, "mode": "insert", "gap_frames": 2},
        "gap_frames",
        "at least the 5 frames",
    ),
    ({"pair_id": "p", "source": "CLIP", "start_frame": 6, "end_frame": 6}, "end_frame", "greater than start_frame"),
    ({"pair_id": "p", "source": "CLIP", "start_frame": 8, "end_frame": 3}, "end_frame", "greater than start_frame"),
    ({"pair_id": "p", "source": "CLIP", "start_frame": 3, "end_frame": 4}, "end_frame", "at least one frame"),
    ({"pair_id": "p", "source": "CLIP", "start_frame": 3, "end_frame": 40}, "end_frame", "past the end"),
    ({"pair_id": "p", "source": "CLIP", "start_frame": -1, "end_frame": 4}, "start_frame", ">= 0"),
    ({"pair_id": "p", "source": "CLIP", "start_frame": 1}, "end_frame", "required"),
    ({"pair_id": "p", "source": "CLIP", "start_frame": 1, "end_frame": 5, "gap_frames": 2}, "gap_frames", "gives 3"),
    ({"pair_id": "p", "source": "nope.mp4", "start_frame": 1, "end_frame": 5}, "source", "cannot open"),
    ({"pair_id": "p", "source": "a.png", "start_frame": 1, "end_frame": 5}, "end_frame", "past the end of a.png"),
    (
        {"pair_id": "p", "source": "CLIP", "start_image": "a.png", "start_frame": 1, "end_frame": 5},
        "source",
        "not both",
    ),
    ({"pair_id": "p"}, "start_image", "no keyframes"),
]


@pytest.mark.parametrize(("row", "column", "words"), BAD_ROWS, ids=[f"{c}-{w}" for _, c, w in BAD_ROWS])
def test_each_problem_names_row_and_column(images, clip_factory, capsys, row, column, words):
    clip = str(clip_factory(20))
    good = {"pair_id": "ok", "start_image": "a.png", "end_image": "b.png", "gap_frames": 2}
    row = {k: (clip if v == "CLIP" else v) for k, v in row.items()}
    path = write_manifest([good, row], images / "m.parquet")
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    problems = [p for p in err.value.problems if p.row == 1 and p.column == column]
    assert problems, err.value.problems
    assert words in problems[0].message
    assert all(p.row == 1 for p in err.value.problems)  # the good row is not blamed
    assert main(["manifest", "validate", str(path)]) == 2
    out = capsys.readouterr().err
    assert "row 1" in out and f"column '{column}'" in out and "Traceback" not in out


def test_all_problems_listed_at_once(images):
    rows = [
        {"pair_id": "a", "start_image": "a.png", "end_image": "missing.png", "gap_frames": 1},
        {"pair_id": "b", "start_image": "a.png", "end_image": "b.png", "gap_frames": 0},
        {"pair_id": "a", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1},
    ]
    with pytest.raises(ManifestError) as err:
        load_manifest(write_manifest(rows, images / "m.parquet"))
    assert {(p.row, p.column) for p in err.value.problems} == {(0, "end_image"), (1, "gap_frames"), (2, "pair_id")}


def test_table_level_problems(images, capsys):
    pq.write_table(pa.table({"start_image": ["a.png"], "end_image": ["b.png"]}), images / "noid.parquet")
    pq.write_table(
        pa.table({"pair_id": ["x"], "start_image": ["a.png"], "end_image": ["b.png"], "gap_frames": ["three"]}),
        images / "types.parquet",
    )
    pq.write_table(pa.table({"pair_id": ["x"], "gap_frames": [1]}), images / "nokeys.parquet")
    (images / "text.parquet").write_text("pair_id,start_image\n")
    data = (images / "types.parquet").read_bytes()
    (images / "trunc.parquet").write_bytes(data[: len(data) // 2])
    expect = {
        "noid": "'pair_id': required column is missing",
        "types": "'gap_frames': must be a whole number, got 'three' (the column has type string",
        "nokeys": "keyframe columns missing",
        "text": "not a readable Parquet manifest",
        "trunc": "not a readable Parquet manifest",
        "absent": "manifest not found",
    }
    for stem, words in expect.items():
        assert main(["manifest", "validate", str(images / f"{stem}.parquet")]) == 2, stem
        assert words in capsys.readouterr().err, stem


def test_float_columns_from_pandas_are_accepted_when_whole(images, clip_factory):
    clip = str(clip_factory(20))
    table = pa.table(
        {
            "pair_id": ["a", "b"],
            "source": [clip, clip],
            "start_frame": [1.0, 2.5],
            "end_frame": [5.0, 9.0],
        }
    )
    pq.write_table(table, images / "f.parquet")
    with pytest.raises(ManifestError) as err:
        load_manifest(images / "f.parquet")
    assert [(p.row, p.column) for p in err.value.problems] == [(1, "start_frame")]


def test_mistyped_parquet_columns_are_read_cell_by_cell_and_every_problem_listed(images, clip_factory):
    """A Parquet file from another tool with frame numbers stored as text and ids as numbers: cells that are
    what their column holds are read as a CSV cell is; one that is not is its row's problem, and the other
    rows' problems are listed with it (a wrong-typed column used to hide them all)."""
    clip = str(clip_factory(20))
    table = pa.table(
        {
            "pair_id": [7, 8, 9],
            "source": [clip, clip, clip],
            "start_frame": ["1", "x", " 2 "],
            "end_frame": [5, 9, 12],
            "mode": ["replace", "replace", "bogus"],
        }
    )
    pq.write_table(table, images / "t.parquet")
    with pytest.raises(ManifestError) as err:
        load_manifest(images / "t.parquet")
    found = [(p.row, p.pair_id, p.column) for p in err.value.problems]
    assert found == [(1, "8", "start_frame"), (2, "9", "mode")]
    assert "'x'" in err.value.problems[0].message and "has type string" in err.value.problems[0].message
    pq.write_table(table.slice(0, 1), images / "ok.parquet")
    [pair] = load_manifest(images / "ok.parquet").pairs
    assert (pair.pair_id, pair.start_frame, pair.end_frame) == ("7", 1, 5)


def test_show_prints_rows(images, capsys):
    path = write_manifest(
        [{"pair_id": f"p{i}", "start_image": "a.png", "end_image": "b.png", "gap_frames": i + 1} for i in range(3)],
        images / "m.parquet",
    )
    assert main(["manifest", "show", str(path), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "p0" in out and "p1" in out and "p2" not in out and "1 more rows" in out


def test_messages_name_only_what_the_user_wrote(images, clip_factory):
    """mode='Replace' (a spreadsheet's capital) is replace; a bad mode or end < start says so and nothing about
    gap_frames, a column the user never set."""
    clip = str(clip_factory(20))
    ok = load_manifest(write_manifest([{"pair_id": "a", "source": clip, "start_frame": 1, "end_frame": 5,
                                        "mode": "Replace"}], images / "cap.parquet"))  # fmt: skip
    assert (ok.pairs[0].mode, ok.pairs[0].gap_frames) == ("replace", 3)
    rows = [
        {"pair_id": "a", "source": clip, "start_frame": 1, "end_frame": 5, "mode": "swap"},
        {"pair_id": "b", "source": clip, "start_frame": 9, "end_frame": 5},
    ]
    with pytest.raises(ManifestError) as err:
        load_manifest(write_manifest(rows, images / "m.parquet"))
    assert [(p.row, p.column) for p in err.value.problems] == [(0, "mode"), (1, "end_frame")]


def test_columns_of_another_tool_are_listed_with_renames(images, capsys):
    pq.write_table(pa.table({"id": ["x"], "video": ["a.mp4"], "first": [1], "last": [5]}), images / "o.parquet")
    assert main(["manifest", "validate", str(images / "o.parquet")]) == 2
    err = capsys.readouterr().err
    assert "rename 'id' for pair_id" in err
    assert "'video' for source, 'first' for start_frame, 'last' for end_frame" in err
    assert "the file's columns: id, video, first, last" in err


def test_csv_manifest_is_read_like_parquet(images, clip_factory, capsys, tmp_path):
    clip = clip_factory(20)
    csv = images / "m.csv"
    csv.write_text(
        "pair_id,source,start_frame,end_frame,mode,gap_frames,reason,score\n"
        f"v1,{clip},1,5,,,flash,41.2345678912345\n"
        "i1,,,,,2,timestamp_gap,\n"
    )
    with pytest.raises(ManifestError) as err:  # same row/column problems as the Parquet file would give
        load_manifest(csv)
    assert [(p.row, p.column) for p in err.value.problems] == [(1, "start_image")]
    csv.write_text(csv.read_text().replace("i1,,,,,2,timestamp_gap,", "i1,,x,4,insert,2,timestamp_gap,"))
    with pytest.raises(ManifestError) as err:
        load_manifest(csv)
    problem = err.value.problems[0]
    assert (problem.row, problem.pair_id, problem.column) == (1, "i1", "start_frame")
    assert "whole number, got 'x' (line 3)" in problem.message
    csv.write_text(csv.read_text().replace("i1,,x,4,insert,2,timestamp_gap,", f"i1,{clip},8,9,insert,2,timestamp_gap,"))
    m = load_manifest(csv)
    assert [(p.pair_id, p.mode, p.gap_frames) for p in m.pairs] == [("v1", "replace", 3), ("i1", "insert", 2)]
    assert m.pairs[0].extras == {"reason": "flash", "score": 41.2345678912345}
    assert main(["manifest", "show", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "41.23" in out and "41.2345678912345" not in out and "start_frame" in out
    out_dir = tmp_path / "run"
    assert main(["run", str(csv), "--out", str(out_dir), "--backend", "blend", "--no-preview", "-q"]) == 0
    kept = pq.read_table(out_dir / "manifest.parquet")  # the run keeps it as Parquet for splice and report
    assert kept.column("pair_id").to_pylist() == ["v1", "i1"] and kept.schema.field("start_frame").type == pa.int64()


def _edit_timeline(tmp_path, clip):
    """An edit at 25 fps on `clip` (whose start timecode is 00:57:36:00 = frame 86400): a red marker on one frame
    of the first clip, a green-flagged clip of frames 20-23, and a blue track marker over frames 26-27."""
    otio = pytest.importorskip("opentimelineio")

    def tr(start, duration):
        return otio.opentime.TimeRange(otio.opentime.RationalTime(start, 25), otio.opentime.RationalTime(duration, 25))

    def clip_of(name, first, count):
        ref = otio.schema.ExternalReference(target_url=clip.as_uri(), available_range=tr(86400, 40))
        return otio.schema.Clip(name=name, media_reference=ref, source_range=tr(86400 + first, count))

    shot1, shot2, shot3 = clip_of("shot1", 0, 20), clip_of("shot2", 20, 4), clip_of("shot3", 24, 10)
    shot1.markers.append(otio.schema.Marker(name="flash", marked_range=tr(86405, 1), color="RED", comment="white"))
    shot2.color = otio.core.Color.GREEN
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.extend([shot1, shot2, shot3])
    track.markers.append(otio.schema.Marker(name="dropout", marked_range=tr(26, 2), color="BLUE"))
    timeline = otio.schema.Timeline(name="edit")
    timeline.tracks.append(track)
    return timeline


def test_from_otio_markers_and_flagged_clips_become_rows(tmp_path, clip_factory, capsys):
    otio = pytest.importorskip("opentimelineio")
    plain = clip_factory(40)
    clip = tmp_path / "clip_tc.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(plain), "-c", "copy", "-timecode", "00:57:36:00",
                    str(clip)], check=True)  # fmt: skip
    timeline = _edit_timeline(tmp_path, clip)
    otio.adapters.write_to_file(timeline, str(tmp_path / "edit.otio"))
    out = tmp_path / "repairs.parquet"
    assert main(["manifest", "from-otio", str(tmp_path / "edit.otio"), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    m = load_manifest(out)
    got = [(p.start_frame, p.end_frame, p.mode, p.extras["reason"], p.extras["marker_color"]) for p in m.pairs]
    assert got == [
        (4, 6, "replace", "flash", "RED"),  # frame 5 marked: keyframes 4 and 6
        (19, 24, "replace", "flagged clip shot2", "GREEN"),  # the flagged clip's frames 20-23
        (25, 28, "replace", "dropout", "BLUE"),  # track time 26-27 is shot3's media frames 26-27
    ]
    assert all(p.source == clip for p in m.pairs) and m.pairs[0].extras["comment"] == "white"

    assert main(["manifest", "from-otio", str(tmp_path / "edit.otio"), "-o", str(out), "--color", "RED",
                 "--mode", "insert", "--gap", "5"]) == 0  # fmt: skip
    (only,) = load_manifest(out).pairs
    assert (only.start_frame, only.end_frame, only.mode, only.gap_frames) == (4, 5, "insert", 5)

    # An EDL (through OTIO's cmx_3600 adapter) counts source timecode from the file's own: 00:57:36:05 is frame 5.
    if "cmx_3600" in {a.name for a in otio.plugins.ActiveManifest().adapters}:
        otio.adapters.write_to_file(timeline, str(tmp_path / "edit.edl"), adapter_name="cmx_3600")
        assert main(["manifest", "from-otio", str(tmp_path / "edit.edl"), "-o", str(out)]) == 2
        assert "give it with --rate" in capsys.readouterr().err
        assert main(["manifest", "from-otio", str(tmp_path / "edit.edl"), "-o", str(out), "--rate", "25"]) == 0
        assert [(p.start_frame, p.end_frame) for p in load_manifest(out).pairs] == [(4, 6)]


def test_from_otio_bad_input(tmp_path, capsys):
    otio = pytest.importorskip("opentimelineio")
    assert main(["manifest", "from-otio", str(tmp_path / "none.otio"), "-o", str(tmp_path / "m.parquet")]) == 2
    assert "timeline not found" in capsys.readouterr().err
    (tmp_path / "junk.otio").write_text("not a timeline")
    assert main(["manifest", "from-otio", str(tmp_path / "junk.otio"), "-o", str(tmp_path / "m.parquet")]) == 2
    assert "cannot read" in capsys.readouterr().err
    empty = otio.schema.Timeline(name="empty")
    empty.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Video))
    otio.adapters.write_to_file(empty, str(tmp_path / "empty.otio"))
    assert main(["manifest", "from-otio", str(tmp_path / "empty.otio"), "-o", str(tmp_path / "m.parquet")]) == 2
    assert "no markers or flagged clips" in capsys.readouterr().err
    assert not (tmp_path / "m.parquet").exists()


def test_a_seed_past_int64_and_a_column_given_twice_are_manifest_errors(images):
    # A uint64 seed of 2**64 - 1 was valid, then broke every later run of the root (OverflowError); two
    # columns of one name gave an internal KeyError.
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"pair_id": ["p"], "start_image": ["a.png"], "end_image": ["b.png"], "gap_frames": [1]}
    table = pa.table({**columns, "seed": pa.array([2**64 - 1], pa.uint64())})
    pq.write_table(table, images / "seed.parquet")
    with pytest.raises(ManifestError) as err:
        load_manifest(images / "seed.parquet")
    assert [(p.column, "2**63 - 1" in p.message) for p in err.value.problems] == [("seed", True)]
    twice = pa.Table.from_arrays([pa.array(["p"]), pa.array(["a.png"]), pa.array(["b.png"]), pa.array(["c.png"])],
                                 names=["pair_id", "start_image", "end_image", "start_image"])  # fmt: skip
    pq.write_table(twice, images / "twice.parquet")
    with pytest.raises(ManifestError, match="column 'start_image' appears more than once"):
        load_manifest(images / "twice.parquet")
    endless = pa.table({**columns, "seed": pa.array([1.0]), "steps": pa.array([float("inf")])})
    pq.write_table(endless, images / "inf.parquet")
    with pytest.raises(ManifestError) as err:
        load_manifest(images / "inf.parquet")
    assert [(p.column, p.message) for p in err.value.problems] == [("steps", "must be a whole number, got inf")]
