"""A timeline that `splice --otio/--edl` writes reads back with `manifest from-otio` onto the run's own rows, and
its EDL's LOC lines sit where the edits are on the timeline. Before, the review markers sat on the generated
clips (PNG sequences), which from-otio cannot use, and the source clips carried none: from-otio exited 2 on
both files, and every LOC was written at 00:00:00:00 (the marker's time inside its generated clip)."""

from __future__ import annotations

import re
import subprocess

import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import load_manifest, write_manifest

pytest.importorskip("opentimelineio")


def _clip(path, timecode: str = "01:00:00:00"):
    """A 2 s 25 fps H.264 clip whose timecode track starts at `timecode`."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=2", "-c:v", "libx264",
         "-g", "12", "-pix_fmt", "yuv420p", "-timecode", timecode, str(path)], check=True,
    )  # fmt: skip
    return path


ROWS = [
    {"pair_id": "flash", "start_frame": 10, "end_frame": 14, "mode": "replace"},
    {"pair_id": "cut", "start_frame": 25, "end_frame": 26, "mode": "insert", "gap_frames": 2},
    {"pair_id": "drop", "start_frame": 33, "end_frame": 36, "mode": "insert", "gap_frames": 3},  # over frames 34-35
]


def _spliced_run(tmp_path, timecode: str = "01:00:00:00"):
    """A real run (blend backend) of ROWS on a tape starting at `timecode`, spliced with --otio and --edl; its rows
    as the run reads them."""
    clip = _clip(tmp_path / "tape.mp4", timecode)
    manifest = write_manifest([{"source": "tape.mp4", **row} for row in ROWS], tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    assert main(["splice", str(run), "--otio", str(tmp_path / "edits.otio"), "--edl", str(tmp_path / "edits.edl")]) == 0
    wanted = [(clip.resolve(), r["start_frame"], r["end_frame"], r["mode"], r.get("gap_frames", 3)) for r in ROWS]
    return wanted


def _rows(path):
    return [(p.source.resolve(), p.start_frame, p.end_frame, p.mode, p.gap_frames) for p in load_manifest(path).pairs]


@pytest.mark.parametrize("kind", ["otio", "edl"])
def test_a_spliced_timeline_reads_back_onto_the_runs_rows(tmp_path, capsys, kind):
    """Every generated clip carries its review marker; from-otio turns each back into the row that made it:
    same source, keyframes, mode and gap, for replace and insert rows, whatever --mode says."""
    wanted = _spliced_run(tmp_path)
    out = tmp_path / "back.parquet"
    rate = ["--rate", "25"] if kind == "edl" else []
    capsys.readouterr()
    assert main(["manifest", "from-otio", str(tmp_path / f"edits.{kind}"), "-o", str(out), *rate]) == 0, (
        capsys.readouterr().err
    )
    assert _rows(out) == wanted
    assert [p.pair_id for p in load_manifest(out).pairs] == ["flash", "cut", "drop"]
    # --mode and --gap are for marks on the source; a generated clip keeps its own row.
    assert main(["manifest", "from-otio", str(tmp_path / f"edits.{kind}"), "-o", str(out), *rate,
                 "--mode", "insert", "--gap", "7"]) == 0  # fmt: skip
    assert _rows(out) == wanted
    # The review decision's colour picks rows: none is to be regenerated yet.
    assert main(["manifest", "from-otio", str(tmp_path / f"edits.{kind}"), "-o", str(out), *rate,
                 "--color", "ORANGE"]) == 2  # fmt: skip


def test_an_edl_that_passes_midnight_reads_back_onto_the_runs_rows(tmp_path):
    """A tape from 23:59:59:10: its EDL's timecodes wrap to 00:00:00:00 at frame 15, and still read back onto the
    run's rows. After the wrap they were taken as frames near 0: a row at frame -2159967, one lost, exit 0."""
    wanted = _spliced_run(tmp_path, "23:59:59:10")
    out = tmp_path / "back.parquet"
    assert main(["manifest", "from-otio", str(tmp_path / "edits.edl"), "-o", str(out), "--rate", "25"]) == 0
    assert _rows(out) == wanted


def test_the_edls_locators_are_where_the_edits_are(tmp_path):
    """Each LOC is the record timecode of its generated clip's first frame (on the spliced output's own timecode,
    01:00:00:00 here), as Avid writes LOCs: 00:00:00:00 put every one at the timeline's start."""
    _spliced_run(tmp_path)
    text = (tmp_path / "edits.edl").read_text()
    events = re.findall(r"^\d{3}  (\S+)\s+V\s+C\s+\S+ \S+ (\S+) \S+\n(?:\*.*\n)*?\* LOC: (\S+) ", text, re.M)
    assert events == [("FLASH", "01:00:00:11", "01:00:00:11"), ("CUT", "01:00:01:01", "01:00:01:01"),
                      ("DROP", "01:00:01:11", "01:00:01:11")]  # fmt: skip


def test_an_avid_locator_on_the_record_side_lands_on_its_frame(tmp_path):
    """An NLE's EDL over a file starting at 01:00:00:00, cut in at record 10:00:00:00 from source 01:00:00:10:
    its LOC at record 10:00:00:05 is file frame 15 (the adapter keeps a LOC as written, as if on the source side:
    it was read as a source timecode nine hours past the file's end, and left out)."""
    clip = _clip(tmp_path / "tape.mp4")
    edl = tmp_path / "avid.edl"
    edl.write_text(
        "TITLE: avid\nFCM: NON-DROP FRAME\n\n"
        "001  TAPE     V     C        01:00:00:10 01:00:01:10 10:00:00:00 10:00:01:00\n"
        f"* FROM CLIP NAME:  tape.mp4\n* FROM CLIP: {clip.as_uri()}\n* LOC: 10:00:00:05 RED     DROPOUT\n"
    )
    out = tmp_path / "rows.parquet"
    assert main(["manifest", "from-otio", str(edl), "-o", str(out), "--rate", "25"]) == 0
    assert [(p.start_frame, p.end_frame, p.extras["record_frame"]) for p in load_manifest(out).pairs] == [(14, 16, 5)]


def test_a_mark_left_out_says_so_once(tmp_path, capsys):
    """A mark on the first frame of a file that is not here: left out (no keyframe before it), said once. It was
    also called kept ('rows kept; ... once the media is here'), and the error began 'no markers or flagged
    clips' though there was one."""
    import opentimelineio as otio

    def tr(start, duration):
        return otio.opentime.TimeRange(otio.opentime.RationalTime(start, 25), otio.opentime.RationalTime(duration, 25))

    ref = otio.schema.ExternalReference(target_url=(tmp_path / "gone.mp4").as_uri(), available_range=tr(0, 50))
    shot = otio.schema.Clip(name="shot", media_reference=ref, source_range=tr(0, 50))
    shot.markers.append(otio.schema.Marker(name="flash", marked_range=tr(0, 1), color="RED"))
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(shot)
    timeline = otio.schema.Timeline(name="edit")
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(tmp_path / "edit.otio"))
    assert main(["manifest", "from-otio", str(tmp_path / "edit.otio"), "-o", str(tmp_path / "m.parquet")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "marks were found, but none gives a row" in err
    assert "gone.mp4 frames 0-0: starts at the file's first frame (no keyframe before it); left out" in err
    assert "kept" not in err and "no markers" not in err
