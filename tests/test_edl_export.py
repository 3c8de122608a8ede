"""What `splice --otio/--edl` writes, checked against the source it was made from: the start timecode wherever the
container keeps it, the edit rate, reel names and file names a conform can relink by, and rates and lengths
outside what OTIO's CMX 3600 adapter writes by itself. Each test splices a tiny real clip (blend backend)."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest

otio = pytest.importorskip("opentimelineio")

REPLACE_10_14 = {"pair_id": "fix_a", "start_frame": 10, "end_frame": 14, "mode": "replace"}


def _clip(path, rate: str, frames: int, *ffmpeg_args: str):
    """A lossless `frames`-frame clip at `rate` (extra ffmpeg output options: a timecode, a timestamp hole)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s=32x32:r={rate}", "-frames:v",
         str(frames), *ffmpeg_args, "-c:v", "libx264", "-qp", "0", "-g", "12", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _splice(tmp_path, clip, rows, *outputs: str) -> int:
    """Run `rows` over `clip` (blend) and splice it with `outputs` (--otio/--edl names in tmp_path): the exit status."""
    manifest = write_manifest([{"source": clip.name, **row} for row in rows], tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    flags = [arg for name in outputs for arg in (f"--{name.rpartition('.')[2]}", str(tmp_path / name))]
    return main(["splice", str(run), "-o", str(tmp_path / f"spliced{clip.suffix}"), *flags])


def _events(edl: str) -> list[list[str]]:
    """Each event line's fields: number, reel, channel, kind, source in/out, record in/out."""
    return [line.split() for line in edl.splitlines() if re.match(r"^\d+ ", line)]


def test_a_matroska_start_timecode_is_the_timelines_start(tmp_path):
    """Matroska keeps the start timecode as the tag TIMECODE (upper case): it was not found, and the OTIO and the
    EDL sat on 00:00:00;00, 1790 frames from the file's (and the spliced file's) own 00:00:59;20."""
    clip = _clip(tmp_path / "tape.mkv", "30000/1001", 40, "-timecode", "00:00:59;20")
    assert _splice(tmp_path, clip, [REPLACE_10_14], "e.otio", "e.edl") == 0
    timeline = otio.adapters.read_from_file(str(tmp_path / "e.otio"))
    start = timeline.global_start_time
    assert (start.value, start.rate) == (1790, 30000 / 1001)  # 00:00:59;20 drop-frame
    edl = (tmp_path / "e.edl").read_text()
    assert "FCM: DROP FRAME" in edl
    assert _events(edl)[0][4:] == ["00:00:59;20", "00:01:00;03", "00:00:59;20", "00:01:00;03"]  # frames 0-9


HOLE_ROWS = [
    {"pair_id": "hole", "start_frame": 29, "end_frame": 30, "mode": "insert", "gap_frames": 1},
    {"pair_id": "fix", "start_frame": 50, "end_frame": 54, "mode": "replace"},
]


@pytest.mark.parametrize(
    ("rate", "timecode", "start", "first_event"),
    [
        ("25", "01:00:00:00", 90000, ["01:00:00:00", "01:00:01:05", "01:00:00:00", "01:00:01:05"]),
        ("30000/1001", "00:00:59;00", 1770, ["00:00:59;00", "00:01:00;02", "00:00:59;00", "00:01:00;02"]),
    ],
)
def test_a_source_with_a_missing_frame_is_edited_at_its_own_rate(tmp_path, rate, timecode, start, first_event):
    """One frame's timestamp missing (phone footage) moves the average rate off the stream's (24.671 for 25): the
    OTIO ran at that average (every clip ~48 s off the file's timecode), and a 29.97 drop-frame source got a
    NON-DROP EDL whose source and record lengths differed. Both are now at the stream's own rate."""
    hole = f"setpts='(N+gte(N\\,30))/({rate}*TB)'"  # frame 30 onwards one frame late: no frame at 30
    clip = _clip(tmp_path / "tape.mov", rate, 60, "-vf", hole, "-fps_mode", "passthrough", "-timecode", timecode)
    assert _splice(tmp_path, clip, HOLE_ROWS, "e.otio", "e.edl") == 0
    timeline = otio.adapters.read_from_file(str(tmp_path / "e.otio"))
    exact = float(Fraction(rate))
    assert timeline.global_start_time.rate == exact
    assert timeline.global_start_time.value == start  # the file's start timecode, counted at its rate
    first = timeline.video_tracks()[0][0]
    assert first.source_range.duration == otio.opentime.RationalTime(30, exact)  # source frames 0-29
    edl = (tmp_path / "e.edl").read_text()
    assert ("FCM: DROP FRAME" in edl) == (";" in timecode)
    assert _events(edl)[0][4:] == first_event
    # The review page and `review --list` count the same timecode (they counted at the average rate).
    from semfi_batch.review.cards import RunReview
    from semfi_batch.review.timecode import timecode as timecode_of

    card = next(c for c in RunReview(tmp_path / "run").cards() if c.pair_id == "fix")
    assert card.timecode_in == timecode_of(51, Fraction(rate), timecode)


def test_every_media_has_its_own_reel_and_generated_events_name_their_files(tmp_path):
    """A conform relinks an EDL by reel and timecode. The reel was the first 8 letters and digits of a name, so
    both repairs of interview.mov (pair_ids interview-dmg-...) got its reel INTERVIE at 00:00:00:00: its first
    frames in place of each repair. And a repair's FROM CLIP named frames [1-3].png, not its 000001.png..."""
    from urllib.parse import unquote, urlsplit

    clip = _clip(tmp_path / "interview.mov", "25", 40)
    rows = [
        {"pair_id": "interview-dmg-000010", "start_frame": 10, "end_frame": 14, "mode": "replace"},
        {"pair_id": "interview-dmg-000025", "start_frame": 25, "end_frame": 29, "mode": "replace"},
    ]
    assert _splice(tmp_path, clip, rows, "e.edl") == 0
    edl = (tmp_path / "e.edl").read_text()
    blocks = re.findall(r"^(\d+ .*)\n((?:\*.*\n)*)", edl, re.M)
    reels = {}  # the reel of each event's media (its FROM CLIP)
    for line, comments in blocks:
        url = re.search(r"^\* FROM CLIP: (\S+)", comments, re.M).group(1)
        reels.setdefault(url, set()).add(line.split()[1])
    assert all(len(names) == 1 for names in reels.values())  # one reel per media...
    names = [next(iter(r)) for r in reels.values()]
    assert len(set(names)) == len(names) == 3  # ...and one media per reel: the source and each repair
    assert all(re.fullmatch(r"[A-Z0-9]{1,8}", name) for name in names)
    generated = [url for url in reels if not url.endswith("interview.mov")]
    for url in generated:
        folder, first, last, suffix = re.fullmatch(r"(.*/)\[(\d+)-(\d+)\](\.png)", url).groups()
        files = [
            Path(unquote(urlsplit(folder).path)) / f"{n:0{len(first)}d}{suffix}"
            for n in range(int(first), int(last) + 1)
        ]
        assert files and all(f.is_file() for f in files), files


@pytest.mark.parametrize(
    ("rate", "timecode", "last_event"),
    [
        ("12", "01:00:00:00", ["01:00:02:02", "01:00:03:04", "01:00:02:04", "01:00:03:06"]),
        ("15", "00:00:00:00", ["00:00:01:11", "00:00:02:10", "00:00:01:13", "00:00:02:12"]),
    ],
)
def test_an_edl_at_12_or_15_fps(tmp_path, rate, timecode, last_event):
    """OTIO's CMX 3600 adapter writes timecode at the SMPTE rates only: at 12 fps (assemble's animation rate) or 15
    the video was spliced and then the EDL failed ("SMPTE timecode does not support this rate", exit 1)."""
    clip = _clip(tmp_path / "tape.mov", rate, 40, "-timecode", timecode)
    insert = {"pair_id": "cut", "start_frame": 25, "end_frame": 26, "mode": "insert", "gap_frames": 2}
    assert _splice(tmp_path, clip, [REPLACE_10_14, insert], "e.edl") == 0
    events = _events((tmp_path / "e.edl").read_text())
    assert [event[0] for event in events] == ["001", "002", "003", "004", "005"]
    assert events[-1][4:] == last_event  # source frames 26-39 after 3 + 2 generated frames in place of 3 + 0


def test_an_edl_of_more_than_999_events_keeps_three_digit_event_numbers(tmp_path):
    """CMX 3600 event numbers have three digits: event 1000 was written as 1000, shifting every column after it.
    Past 999 the numbering starts again at 001, and OTIO's reader still reads every event in order."""
    from semfi_batch.splice.otio_export import edl_text

    def frames(start, count):
        return otio.opentime.TimeRange(otio.opentime.RationalTime(start, 25), otio.opentime.RationalTime(count, 25))

    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for n in range(1002):  # a source frame, then a generated one, and so on
        ref = otio.schema.ExternalReference(target_url=(tmp_path / f"{n % 2}.mov").as_uri())
        clip = otio.schema.Clip(name=f"clip {n}", media_reference=ref, source_range=frames(90000 + n, 1))
        clip.metadata["cmx_3600"] = {"reel": f"R{n % 2}"}
        track.append(clip)
    timeline = otio.schema.Timeline(name="long.mov", global_start_time=otio.opentime.RationalTime(90000, 25))
    timeline.metadata["semfi_batch"] = {"timecode": "01:00:00:00"}
    timeline.tracks.append(track)
    text = edl_text(timeline)
    lines = [line for line in text.splitlines() if re.match(r"^\d+ ", line)]
    assert [line[:3] for line in lines] == [f"{n:03d}" for n in range(1, 1000)] + ["001", "002", "003"]
    assert {len(line.split("  ", 1)[0]) for line in lines} == {3}  # every column where CMX 3600 has it
    assert lines[-1].split()[4:] == ["01:00:40:01", "01:00:40:02", "01:00:40:01", "01:00:40:02"]  # frame 1001
    back = otio.adapters.read_from_string(text, adapter_name="cmx_3600", rate=25)
    assert [clip.name for clip in back.video_tracks()[0]] == [f"clip {n}" for n in range(1002)]


def test_a_rate_no_edl_can_count_is_refused_before_splicing(tmp_path, capsys):
    """At 7 fps no CMX 3600 timecode counts: the splice is refused before any encoding, not after it."""
    clip = _clip(tmp_path / "tape.mov", "7", 30)
    assert _splice(tmp_path, clip, [REPLACE_10_14], "e.edl") == 1
    assert "cannot write an EDL of tape.mov at 7 fps" in capsys.readouterr().err
    assert not (tmp_path / "spliced.mov").exists() and not (tmp_path / "e.edl").exists()


def test_a_variable_rate_recording_is_timed_at_its_average_not_its_clock():
    """A phone's variable-rate MP4 has a base rate (r_frame_rate) of 90000, its clock: a timeline counted at that
    would make every clip a 3000th of its length. A stream with a frame missing keeps its own rate."""
    from semfi_batch.review.timecode import timecode_rate

    assert timecode_rate(Fraction(90000), 10.505) == 10.505
    assert timecode_rate(Fraction(25), 24.671) == 25
    assert timecode_rate(Fraction(30000, 1001), 29.641) == 30000 / 1001
