"""`manifest from-otio` on EDLs: timecodes counted as the EDL says (FCM), rates as every command takes them, the
24 h wrap, speed changes (M2) and LOC lines that could be on either side of their event."""

from __future__ import annotations

import subprocess

import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import load_manifest

pytest.importorskip("opentimelineio")


def _tape(path, rate: str, timecode: str, seconds: float = 2):
    """A small H.264 clip at `rate` whose timecode track starts at `timecode`."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s=64x48:r={rate}:d={seconds}",
         "-c:v", "libx264", "-g", "12", "-pix_fmt", "yuv420p", "-timecode", timecode, str(path)], check=True,
    )  # fmt: skip
    return path


def _event(number: int, times: str, media, *comments: str, m2: str = "") -> str:
    """One cut event of `media` ("src_in src_out rec_in rec_out") with its comment lines, and with `m2` ("speed
    source_timecode") its motion effect."""
    lines = [f"{number:03d}  TAPE     V     C        {times}"]
    if m2:
        speed, timecode = m2.split()
        lines.append(f"M2   TAPE       {speed}                {timecode}")
    lines += [f"* FROM CLIP NAME:  {media.name}", f"* FROM CLIP: {media.as_uri()}"]
    return "\n".join([*lines, *comments]) + "\n"


def _from_edl(tmp_path, text: str, rate: str, capsys=None) -> list[tuple]:
    """The rows (start, end, record_frame) that from-otio makes of the EDL `text` at `rate`."""
    edl = tmp_path / "edit.edl"
    edl.write_text(text)
    out = tmp_path / "rows.parquet"
    assert main(["manifest", "from-otio", str(edl), "-o", str(out), "--rate", rate]) == 0
    return [(p.start_frame, p.end_frame, p.extras.get("record_frame")) for p in load_manifest(out).pairs]


def test_23_98_is_the_ntsc_rate(tmp_path):
    """--rate 23.98 (Avid's name for 23.976) is 24000/1001, as `assemble --fps 23.98` takes it: it was snapped
    to 1199/50, which OTIO's timecode refuses, and the error pointed at installing adapters."""
    clip = _tape(tmp_path / "tape.mov", "24000/1001", "00:59:59:10")
    text = "TITLE: t\nFCM: NON-DROP FRAME\n\n" + _event(
        1, "00:59:59:10 01:00:00:10 01:00:00:00 01:00:01:00", clip, "* LOC: 01:00:00:20 RED     X"
    )
    assert _from_edl(tmp_path, text, "23.98") == _from_edl(tmp_path, text, "23.976") == [(19, 21, 20)]
    assert _from_edl(tmp_path, text, "24000/1001") == [(19, 21, 20)]  # as every other --fps/--rate takes it


def test_a_semicolon_in_a_comment_does_not_make_a_non_drop_edl_drop_frame(tmp_path):
    """A NON-DROP 29.97 EDL with a ';' in a comment and in a clip name: its timecodes stay non-drop. Any ';' in
    the text made every timecode drop-frame: the mark landed 18 frames early at minute 10 (on no frame here)."""
    clip = _tape(tmp_path / "tape.mov", "30000/1001", "00:09:59:20", seconds=3)
    text = "TITLE: t\nFCM: NON-DROP FRAME\n\n" + _event(
        1, "00:09:59:20 00:10:00:20 01:00:00:00 01:00:01:00", clip, "* LOC: 01:00:00:15 RED     SHOT;2",
        "* COMMENT: flash on 11; check audio",
    )  # fmt: skip
    assert _from_edl(tmp_path, text.replace("tape.mov\n", "tape;take 2.mov\n", 1), "29.97") == [(14, 16, 15)]


def test_each_event_counts_as_its_fcm_line_says(tmp_path):
    """FCM may change between events: a non-drop event from a non-drop tape, then FCM: DROP FRAME and an event
    (timecodes written with ':') from a drop-frame tape; each mark lands on its own file's frame. The whole EDL
    was read drop-frame because one FCM line said so: the first mark fell 18 frames before its file's start."""
    nd = _tape(tmp_path / "nd.mov", "30000/1001", "00:09:59:20")
    df = _tape(tmp_path / "df.mov", "30000/1001", "00:09:59;20")
    text = (
        "TITLE: t\nFCM: NON-DROP FRAME\n\n"
        + _event(1, "00:09:59:20 00:10:00:20 01:00:00:00 01:00:01:00", nd, "* LOC: 01:00:00:15 RED     A")
        + "FCM: DROP FRAME\n"
        + _event(2, "00:09:59:28 00:10:00:28 01:00:10:00 01:00:11:00", df, "* LOC: 01:00:10:05 RED     B")
    )
    # Record 01:00:10;00 counted drop-frame is 192 frames after 01:00:00:00 non-drop.
    assert _from_edl(tmp_path, text, "29.97") == [(12, 14, 197), (14, 16, 15)]


@pytest.mark.parametrize("rate", ["12", "15"])
def test_an_edl_at_an_animation_rate_is_read(tmp_path, rate):
    """12 and 15 fps EDLs (animation, web) are read: OTIO's reader counts SMPTE rates only, and from-otio said
    'SMPTE timecode does not support this rate' with a hint to install the adapter that was installed."""
    clip = _tape(tmp_path / "tape.mov", rate, "01:00:00:00")
    text = "TITLE: t\nFCM: NON-DROP FRAME\n\n" + _event(
        1, "01:00:00:00 01:00:01:00 10:00:00:00 10:00:01:00", clip, "* LOC: 10:00:00:11 RED     X"
    )
    assert _from_edl(tmp_path, text, rate) == [(10, 12, 11)]


def test_an_unreadable_edl_does_not_ask_for_the_installed_adapter(tmp_path, capsys):
    """The error names the reader's complaint, and suggests installing only adapters that are missing."""
    edl = tmp_path / "bad.edl"
    edl.write_text("TITLE: t\n001  TAPE  V  Q  01:00:00:00\n")
    assert main(["manifest", "from-otio", str(edl), "-o", str(tmp_path / "m.parquet"), "--rate", "25"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cmx_3600" in err and "pip install otio-cmx3600-adapter" not in err


def test_timecode_that_passes_midnight(tmp_path):
    """A tape from 23:59:59:10 and an edit on its timecode that passes midnight on both sides: each LOC lands on
    its frame. After the wrap, timecodes were taken as frames near 0: a row at frame -2159967 and a lost one."""
    clip = _tape(tmp_path / "tape.mov", "25", "23:59:59:10", seconds=3)
    text = (
        "TITLE: t\nFCM: NON-DROP FRAME\n\n"
        + _event(1, "23:59:59:10 00:00:00:11 23:59:59:10 00:00:00:11", clip, "* LOC: 00:00:00:05 RED     A")
        + _event(2, "00:00:00:11 00:00:01:11 00:00:00:11 00:00:01:11", clip, "* LOC: 00:00:00:20 RED     B")
    )
    assert _from_edl(tmp_path, text, "25") == [(19, 21, 20), (34, 36, 35)]


@pytest.mark.parametrize("rate", [25, 12])
def test_a_locator_on_a_slowed_event_maps_through_its_speed(tmp_path, rate):
    """Event 001 plays 5 source frames at half speed (M2 at rate/2) over 10 record frames: its LOC 8 frames in is
    source frame 4. The speed was ignored: the mark landed on frame 8, outside the event's source frames 0-4."""
    clip = _tape(tmp_path / "tape.mov", str(rate), "01:00:00:00", seconds=3)
    text = (
        "TITLE: t\nFCM: NON-DROP FRAME\n\n"
        + _event(
            1,
            "01:00:00:00 01:00:00:05 10:00:00:00 10:00:00:10",
            clip,
            "* LOC: 10:00:00:08 RED     SLOW",
            m2=f"{rate / 2:05.1f} 01:00:00:00",
        )
        + _event(2, "01:00:02:00 01:00:02:05 10:00:00:10 10:00:00:15", clip, "* LOC: 10:00:00:12 RED     AFTER")
    )
    assert _from_edl(tmp_path, text, str(rate)) == [(3, 5, 8), (2 * rate + 1, 2 * rate + 3, 12)]


def test_a_frozen_event_is_left_out_with_a_note(tmp_path, capsys):
    """A freeze frame (M2 000.0) maps no record frame onto one source frame: its mark is left out, and said."""
    clip = _tape(tmp_path / "tape.mov", "25", "01:00:00:00")
    edl = tmp_path / "edit.edl"
    edl.write_text(
        "TITLE: t\nFCM: NON-DROP FRAME\n\n"
        + _event(
            1,
            "01:00:00:05 01:00:00:06 10:00:00:00 10:00:00:10",
            clip,
            "* LOC: 10:00:00:08 RED     HELD",
            m2="000.0 01:00:00:05",
        )
    )
    assert main(["manifest", "from-otio", str(edl), "-o", str(tmp_path / "m.parquet"), "--rate", "25"]) == 2
    assert "'tape.mov': marked, but it is a freeze frame" in " ".join(capsys.readouterr().err.split())


def _otio_written_edl(tmp_path):
    """What `otioconvert` gives an editor: OTIO's own EDL writer over a file without timecode. Clip 2 is file
    frames 10-29 at record 20-39, with a marker on file frame 25, which the writer puts at SOURCE timecode
    00:00:01:00: inside the event's source range (10-29) and its record range (20-39) both."""
    import opentimelineio as otio

    media = tmp_path / "phone.mov"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=25:d=2.4", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", str(media)], check=True,
    )  # fmt: skip

    def tr(start, duration):
        return otio.opentime.TimeRange(otio.opentime.RationalTime(start, 25), otio.opentime.RationalTime(duration, 25))

    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for start in (0, 10):
        ref = otio.schema.ExternalReference(target_url=media.name, available_range=tr(0, 60))
        track.append(otio.schema.Clip(name=media.name, media_reference=ref, source_range=tr(start, 20)))
    track[1].markers.append(otio.schema.Marker(name="FLASH", marked_range=tr(25, 1), color="RED"))
    timeline = otio.schema.Timeline(name="edit")
    timeline.tracks.append(track)
    return otio.adapters.write_to_string(timeline, adapter_name="cmx_3600")


def test_a_locator_from_otios_edl_writer_is_read_on_the_source_side(tmp_path, capsys):
    """OTIO's writer puts no FCM line: a LOC that both sides hold is read as it meant it, on the source side, and
    a note says so. It was read on the record side, 10 frames off, without a word."""
    text = _otio_written_edl(tmp_path)
    assert "FCM" not in text
    capsys.readouterr()
    assert _from_edl(tmp_path, text, "25") == [(24, 26, 35)]
    err = " ".join(capsys.readouterr().err.split())
    assert "LOC 'FLASH' on phone.mov: its timecode is inside both" in err and "source side" in err
    assert "frame 25, not 15" in err


def test_a_locator_in_an_edl_with_fcm_is_read_on_the_record_side_and_said(tmp_path, capsys):
    """The same EDL with an FCM line (as Avid, Premiere, Resolve and splice --edl write, LOCs on the record
    side): record 00:00:01:00 is 5 frames into the event, file frame 15; the note names the other reading."""
    text = _otio_written_edl(tmp_path).replace("TITLE: edit\n", "TITLE: edit\nFCM: NON-DROP FRAME\n")
    capsys.readouterr()
    assert _from_edl(tmp_path, text, "25") == [(14, 16, 25)]
    err = " ".join(capsys.readouterr().err.split())
    assert "read on the record side" in err and "frame 15, not 25" in err


def test_a_drop_frame_edl_at_a_rate_without_drop_frame_is_refused(tmp_path, capsys):
    """A drop-frame EDL (';') read at --rate 25 is refused, naming the rates drop-frame exists at: counted
    non-drop, every timecode would be off (the reader refused it too, before timecodes were counted here)."""
    edl = tmp_path / "df.edl"
    event = _event(1, "01:00:00;00 01:00:01;00 01:00:00;00 01:00:01;00", tmp_path / "tape.mov", "* LOC: 01:00:00;05 X")
    edl.write_text("TITLE: t\nFCM: DROP FRAME\n\n" + event)
    assert main(["manifest", "from-otio", str(edl), "-o", str(tmp_path / "m.parquet"), "--rate", "25"]) == 2
    assert "only at 29.97 and 59.94 fps, not at --rate 25" in " ".join(capsys.readouterr().err.split())


def test_a_high_rate_edl_late_in_the_day_is_read(tmp_path):
    """120 fps late in the day: the timecodes that go to OTIO's reader (frame counts at a rate it takes) keep two
    digits of hours, which its LOC pattern needs (at 24 fps 21:00:00:00 became hour 105 and the LOC was lost)."""
    clip = _tape(tmp_path / "tape.mov", "120", "21:00:00:00", seconds=1)
    text = "TITLE: t\nFCM: NON-DROP FRAME\n\n" + _event(
        1, "21:00:00:00 21:00:00:60 21:00:00:00 21:00:00:60", clip, "* LOC: 21:00:00:30 RED     X"
    )
    assert _from_edl(tmp_path, text, "120") == [(29, 31, 30)]


def test_an_event_played_backwards_is_left_out_with_a_note(tmp_path, capsys):
    """M2 at minus full speed: OTIO's reader adds no time warp (source and record lengths agree), so the event
    read as playing forwards and its LOC landed on the mirror frame (15 instead of 14), without a word."""
    clip = _tape(tmp_path / "tape.mov", "25", "01:00:00:00")
    edl = tmp_path / "edit.edl"
    event = _event(1, "01:00:00:10 01:00:00:20 10:00:00:00 10:00:00:10", clip, "* LOC: 10:00:00:05 RED     BACK",
                   m2="-025.0 01:00:00:10")  # fmt: skip
    edl.write_text("TITLE: t\nFCM: NON-DROP FRAME\n\n" + event)
    assert main(["manifest", "from-otio", str(edl), "-o", str(tmp_path / "m.parquet"), "--rate", "25"]) == 2
    assert "'tape.mov': marked, but it is a freeze frame, reversed" in " ".join(capsys.readouterr().err.split())


def test_an_edl_without_rate_is_refused(tmp_path, capsys):
    """Without --rate an EDL whose frame numbers all fit 24 fps was read at 24 fps without a word (OTIO's
    reader's default), every timecode off for 25 fps material; it is refused, saying to give the rate."""
    edl = tmp_path / "edit.edl"
    edl.write_text(_otio_written_edl(tmp_path))
    assert main(["manifest", "from-otio", str(edl), "-o", str(tmp_path / "m.parquet")]) == 2
    assert "an EDL has no frame rate: give it with --rate" in " ".join(capsys.readouterr().err.split())


def test_an_edl_read_at_another_rate_than_its_media_is_refused(tmp_path, capsys):
    """A 25 fps EDL of 29.97 media (or --rate mistyped) was read at 25: every locator landed on another frame of
    the file than the one marked, with exit 0. The file's own timecode rate must agree with --rate; 23.976
    media in a 24 fps EDL count alike (24 frames to a timecode second) and are read."""
    clip = _tape(tmp_path / "tape.mov", "30000/1001", "00:00:00:00")
    text = "TITLE: t\nFCM: NON-DROP FRAME\n\n" + _event(
        1, "00:00:00:00 00:00:02:00 00:00:00:00 00:00:02:00", clip, "* LOC: 00:00:01:05 RED     X"
    )
    edl = tmp_path / "edit.edl"
    edl.write_text(text)
    assert main(["manifest", "from-otio", str(edl), "-o", str(tmp_path / "m.parquet"), "--rate", "25"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "tape.mov: its timecode counts 29.97 frames a second, but the EDL was read at --rate 25" in said
    assert _from_edl(tmp_path, text, "29.97") == [(34, 36, 35)]  # 00:00:01:05 at 30 a second (at 25: frame 30)
    _tape(tmp_path / "film.mov", "24000/1001", "00:00:00:00")
    assert _from_edl(tmp_path, text.replace("tape.mov", "film.mov"), "24") == [(28, 30, 29)]
