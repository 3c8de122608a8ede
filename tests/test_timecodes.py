"""Timecodes an editor conforms by follow the source's own start timecode and its drop-frame flag: the review
list, the report, the EDL (source and record sides, FCM) and the OTIO timeline. They counted from 00:00:00:00
and wrote drop-frame at 29.97 whatever the source; a checker written apart from the tool (SMPTE drop-frame
arithmetic, checked against the `timecode` package) gave the expected values below."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import load_manifest, write_manifest


def _tape(path, start: str, seconds: int = 62):
    """A 29.97 MOV whose timecode track starts at `start` (drop-frame when written with ';')."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s=64x48:r=30000/1001:d={seconds}",
         "-c:v", "libx264", "-g", "48", "-timecode", start, str(path)], check=True,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def tape(tmp_path_factory):
    """`tape(start)`: the module's one tape.mov for each start timecode (made once; the tests only read it)."""
    made = {}

    def get(start: str):
        if start not in made:
            made[start] = _tape(tmp_path_factory.mktemp("tape") / "tape.mov", start)
        return made[start]

    return get


@pytest.mark.parametrize(
    ("start", "fcm", "first_out", "listed", "record"),
    [
        ("00:59:59;28", "DROP FRAME", "01:00:00;09", "01:00:59;28", "01:00:59;28 01:01:00;03"),
        ("01:00:00:00", "NON-DROP FRAME", "01:00:00:11", "01:01:00:00", "01:01:00:00 01:01:00:03"),
    ],
)
def test_timecodes_are_the_sources_own(tmp_path, capsys, tape, start, fcm, first_out, listed, record):
    clip = tape(start)
    rows = [  # frame 1800 is the first of the file's second minute: past a drop at 29.97 drop-frame
        {"pair_id": "a", "source": str(clip), "start_frame": 10, "end_frame": 14, "mode": "replace"},
        {"pair_id": "b", "source": str(clip), "start_frame": 1799, "end_frame": 1803, "mode": "replace"},
        {
            "pair_id": "c",
            "source": str(clip),
            "start_frame": 1803,
            "end_frame": 1804,
            "mode": "insert",
            "gap_frames": 4,
        },
    ]
    run = tmp_path / "run"
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    edl, otio = tmp_path / "edits.edl", tmp_path / "edits.otio"
    assert main(["splice", str(run), "--edl", str(edl), "--otio", str(otio)]) == 0
    capsys.readouterr()
    assert main(["review", str(run), "--list"]) == 0
    assert re.search(rf"\bb\b.*{re.escape(listed)}", capsys.readouterr().out)
    assert f"<td>b</td><td>tape.mov</td><td>{listed}-" in (run / "report.html").read_text()
    text = edl.read_text()
    assert f"FCM: {fcm}" in text.splitlines()[1]
    events = re.findall(r"^(\d{3}) .* (\S+) (\S+) (\S+ \S+)$", text, re.M)
    assert events[0][1:3] == (start, first_out)  # the first source event: frames 0-10, on the file's timecode
    assert events[3][3] == record  # b's generated frames, on the spliced output's own timecode
    timeline = json.loads(otio.read_text())
    assert timeline["global_start_time"]["value"] == (107890 if ";" in start else 108000)


@pytest.mark.parametrize("loc", ["01:01:00;02", "01:01:00:02"])
def test_a_drop_frame_edls_markers_land_on_their_frames(tmp_path, tape, loc):
    """An NLE's drop-frame EDL over a tape starting at 00:59:59;28: its LOC at 01:01:00;02 is file frame 1802.
    The EDL reader dropped the LOC written with ';' without a word, and read one written with ':' as
    non-drop (frame 1912)."""
    clip = tape("00:59:59;28")
    edl = tmp_path / "nle.edl"
    edl.write_text(
        "TITLE: nle\nFCM: DROP FRAME\n\n001  TAPE     V     C        01:00:56;00 01:01:05;00 01:00:00;00 01:00:08;28\n"
        f"* FROM CLIP NAME:  tape.mov\n* FROM CLIP: {clip.as_uri()}\n* LOC: {loc} RED     f1802\n"
    )
    out = tmp_path / "rows.parquet"
    assert main(["manifest", "from-otio", str(edl), "-o", str(out), "--rate", "29.97"]) == 0
    rows = load_manifest(out).pairs
    assert [(p.start_frame, p.end_frame, p.extras.get("record_frame")) for p in rows] == [(1801, 1803, 120)]
