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
from semfi_batch.manifest import write_manifest


@pytest.mark.parametrize(
    ("start", "fcm", "first_out", "listed", "record"),
    [
        ("00:59:59;28", "DROP FRAME", "01:00:00;09", "01:00:59;28", "01:00:59;28 01:01:00;03"),
        ("01:00:00:00", "NON-DROP FRAME", "01:00:00:11", "01:01:00:00", "01:01:00:00 01:01:00:03"),
    ],
)
def test_timecodes_are_the_sources_own(tmp_path, capsys, start, fcm, first_out, listed, record):
    clip = tmp_path / "tape.mov"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=30000/1001:d=62", "-c:v",
         "libx264", "-g", "48", "-timecode", start, str(clip)], check=True,
    )  # fmt: skip
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
