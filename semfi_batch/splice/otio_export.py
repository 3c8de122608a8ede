"""OpenTimelineIO export of a splice, so an editor can review the edits in an NLE instead of taking the baked
file: per source video, a video track of source ranges and generated clips (separate clips, with the manifest
row's reason and columns as metadata) and an audio track of the source audio with the inserted time as gaps.
EDL export goes through OTIO's CMX 3600 adapter (the otio-cmx3600-adapter plugin package since OTIO 0.17).

Source ranges are on the source's own timecode (its start timecode: a QuickTime tmcd track, MXF; 0 without
one), as an NLE shows the file, and the record side starts where the spliced output's timecode does (it keeps
the source's): the timeline's global start, and in the EDL every record timecode. The EDL says FCM: DROP FRAME
or NON-DROP FRAME as the source's timecode is written (the adapter writes neither, and drop-frame at 29.97
and 59.94 whatever the source), and its timecodes are rewritten to match. Each generated clip's review marker
is a LOC line at the record timecode of its first frame, where the edit is on the timeline.

Read back with `manifest from-otio`, each marked generated clip becomes its row again (source, keyframes, mode,
gap): from its metadata in .otio, from its name and the source clips around it in an EDL."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semfi_batch.errors import SemfiError
from semfi_batch.review.timecode import file_timecode_rate, timecode_rate

if TYPE_CHECKING:
    from semfi_batch.splice import SourceResult, SpliceSummary

EDL_ADAPTER = "cmx_3600"
EDL_PACKAGE = "otio-cmx3600-adapter==1.0.0"


class TimelineExportError(SemfiError):
    """The timeline or EDL cannot be written (missing adapter, unsupported content)."""


def _otio():
    try:
        import opentimelineio as otio
    except ImportError:
        raise TimelineExportError("--otio/--edl need opentimelineio (pip install opentimelineio==0.18.1)") from None
    return otio


def check_edl_support(sources: int = 1, source: Path | None = None) -> None:
    """Raise TimelineExportError unless an EDL can be written for a run with `sources` source videos; with the
    `source` video, unless its timecode can be counted in one (its rate: _adapter_rate), before any encoding."""
    otio = _otio()
    names = {a.name for a in otio.plugins.ActiveManifest().adapters}
    if EDL_ADAPTER not in names:
        raise TimelineExportError(
            f"--edl needs OTIO's {EDL_ADAPTER} adapter, which OpenTimelineIO {otio.__version__} no longer ships; "
            f"install it with `pip install {EDL_PACKAGE}`, or use --otio"
        )
    if sources != 1:
        raise TimelineExportError(f"--edl describes one video but the run has {sources} source videos; use --otio")
    if source is not None:
        from semfi_batch.media.probe import probe_stream

        _adapter_rate(otio, file_timecode_rate(source, probe_stream(source).avg_fps), source.name)


def build_timeline(result: SourceResult) -> Any:
    """The OTIO Timeline of one spliced source."""
    otio = _otio()
    from semfi_batch.media.probe import probe_video
    from semfi_batch.review.timecode import start_frame_number

    info = probe_video(result.source)
    rate = timecode_rate(result.frame_rate, info.avg_fps)
    zero = start_frame_number(info.timecode, rate) or 0  # the source's first frame on its own timecode
    tl = otio.schema.Timeline(name=result.output.name)
    tl.global_start_time = otio.opentime.RationalTime(zero, rate)
    tl.metadata["semfi_batch"] = {
        "source": str(result.source),
        "output": str(result.output),
        "method": result.method,
        "note": result.note,
        "audio": result.audio_note,
        "left_out": [{"pair_id": s.pair_id, "why": s.why} for s in result.skipped],
        "timecode": info.timecode,
    }
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    source_ref_range = _range(otio, zero, info.frame_count, rate)
    reels: set[str] = set()  # reel names given so far: one media each
    reel = _unique_reel(result.source.stem, reels)
    for kind, a, b, first_out in result.timeline.clips():
        if kind == "source":
            clip = otio.schema.Clip(
                name=f"{result.source.name} {a}-{b - 1}",
                media_reference=otio.schema.ExternalReference(
                    target_url=result.source.resolve().as_uri(), available_range=source_ref_range
                ),
                source_range=_range(otio, zero + a, b - a, rate),
            )
            clip.metadata["semfi_batch"] = {
                "kind": "source",
                "first_frame": a,
                "end_frame": b,
                "output_frame": first_out,
            }
            clip.metadata["cmx_3600"] = {"reel": reel}
        else:
            edit = result.timeline.edits[a]
            folder = edit.frames[0].parent if edit.frames else edit.job_dir / "frames"
            clip = otio.schema.Clip(
                name=f"{edit.pair_id} ({edit.mode})",
                media_reference=otio.schema.ImageSequenceReference(
                    target_url_base=folder.resolve().as_uri() + "/",
                    name_prefix="",
                    name_suffix=".png",
                    start_frame=1,
                    frame_step=1,
                    rate=rate,
                    frame_zero_padding=6,
                    available_range=_range(otio, 0, edit.gap_frames, rate),
                ),
                source_range=_range(otio, 0, b, rate),
            )
            clip.metadata["semfi_batch"] = {
                "kind": "generated",
                "source": str(result.source.resolve()),
                "pair_id": edit.pair_id,
                "mode": edit.mode,
                "reason": edit.reason,
                "start_frame": edit.start_frame,
                "end_frame": edit.end_frame,
                "gap_frames": edit.gap_frames,
                "output_frame": first_out,
                "decision": edit.decision,
                "manifest": {k: _plain(v) for k, v in edit.extras.items()},
            }
            _mark_decision(otio, clip, edit.decision, b)
            clip.metadata["cmx_3600"] = {"reel": _unique_reel(edit.pair_id, reels)}
        video.append(clip)
    tl.tracks.append(video)
    if info.has_audio:
        tl.tracks.append(_audio_track(otio, result, rate, source_ref_range, zero, reel))
    return tl


# Marker colours an NLE shows on the generated clip: the review decision at a glance.
DECISION_COLORS = {"accepted": "GREEN", "undecided": "YELLOW", "regenerate": "ORANGE", "rejected": "RED"}


def _mark_decision(otio, clip, decision: str, frames: int) -> None:
    """A marker over the generated clip named after its review decision (EDLs carry it as a LOC comment)."""
    color = getattr(otio.schema.MarkerColor, DECISION_COLORS.get(decision, "YELLOW"))
    rate = clip.source_range.start_time.rate
    marker = otio.schema.Marker(
        name=f"review: {decision}", marked_range=_range(otio, 0, max(1, frames), rate), color=color
    )
    marker.metadata["semfi_batch"] = {"decision": decision}
    clip.markers.append(marker)


def _audio_track(otio, result: SourceResult, rate: float, available, zero: int, reel: str) -> Any:
    """Source audio split where time was added (gaps: silence or cross-fade) or removed."""
    track = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    tb = result.time_base
    origin = float(Fraction(int(result.timeline.source_pts[0])) * tb) if result.timeline.count else 0.0
    end = origin + result.duration_s - sum(float(Fraction(s.ticks) * tb) for s in result.timeline.shifts)
    cursor = origin
    for shift in result.timeline.shifts:
        at, delta = float(Fraction(shift.at) * tb), float(Fraction(shift.ticks) * tb)
        cut = at if delta > 0 else at + delta
        track.append(_audio_clip(otio, result, cursor - origin, cut - cursor, rate, available, zero, reel))
        if delta > 0:
            gap = otio.schema.Gap(source_range=_range(otio, 0, delta * rate, rate))
            gap.metadata["semfi_batch"] = {"pair_id": shift.pair_id, "inserted_s": delta}
            track.append(gap)
        cursor = at
    track.append(_audio_clip(otio, result, cursor - origin, end - cursor, rate, available, zero, reel))
    return track


def _audio_clip(
    otio, result: SourceResult, start_s: float, length_s: float, rate: float, available, zero: int, reel: str
) -> Any:
    clip = otio.schema.Clip(
        name=f"{result.source.name} audio",
        media_reference=otio.schema.ExternalReference(
            target_url=result.source.resolve().as_uri(), available_range=available
        ),
        source_range=_range(otio, zero + start_s * rate, max(length_s, 0.0) * rate, rate),
    )
    clip.metadata["cmx_3600"] = {"reel": reel}
    return clip


def _range(otio, start: float, duration: float, rate: float):
    return otio.opentime.TimeRange(
        start_time=otio.opentime.RationalTime(start, rate), duration=otio.opentime.RationalTime(duration, rate)
    )


REEL_LENGTH = 8  # CMX 3600 reel names: up to 8 letters and digits


def _unique_reel(name: str, taken: set[str]) -> str:
    """A CMX 3600 reel name for the media called `name` (added to `taken`): its letters and digits, upper case,
    cut to 8; numbered instead where that is taken (INTERVI2, INTERV10). A conform relinks an event by reel and
    timecode, so two media must never share a reel: cut names made every repair of interview.mov (pair_ids
    interview-dmg-...) the source's reel INTERVIE at 00:00:00:00, relinking the source's first frames."""
    base = re.sub(r"[^A-Za-z0-9]", "", name).upper() or "AX"
    reel, number = base[:REEL_LENGTH], 1
    while reel in taken:
        number += 1
        reel = base[: REEL_LENGTH - len(str(number))] + str(number)
    taken.add(reel)
    return reel


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def write_otio(summary: SpliceSummary, path: Path) -> Path:
    """Write the .otio file: one Timeline, or a collection of them when the run has several sources."""
    otio = _otio()
    timelines = [build_timeline(r) for r in summary.results]
    if len(timelines) == 1:
        obj = timelines[0]
    else:
        obj = otio.schema.SerializableCollection(name=str(summary.run_dir), children=timelines)
    return _atomic_write(path, otio.adapters.write_to_string(obj, adapter_name="otio_json"))


def write_edl(summary: SpliceSummary, path: Path) -> Path:
    """Write a CMX 3600 EDL of the video track (single-source runs)."""
    check_edl_support(len(summary.results))
    return _atomic_write(path, edl_text(build_timeline(summary.results[0])))


def edl_text(tl: Any) -> str:
    """The CMX 3600 EDL of the video track of `tl`, a spliced source's timeline (build_timeline's)."""
    otio = _otio()
    video_only = otio.schema.Timeline(name=tl.name)
    video_only.tracks.append(tl.tracks[0].clone())
    _markers_on_record_time(otio, video_only.tracks[0])
    _frame_files_by_name(otio, video_only.tracks[0])
    counted_at = _adapter_rate(otio, tl.global_start_time.rate, tl.name)
    try:
        text = otio.adapters.write_to_string(video_only, adapter_name=EDL_ADAPTER, rate=counted_at)
    except Exception as exc:  # noqa: BLE001 - the adapter raises several OTIO exception types
        raise TimelineExportError(f"cannot write an EDL of {tl.name}: {exc}") from None
    start = tl.metadata["semfi_batch"]["timecode"]
    return _on_source_timecode(text, tl.global_start_time, start, counted_at)


# The rates OTIO's timecode counts at (the SMPTE rates), lowest first.
_SMPTE_RATES = tuple(
    Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48000/1001", "48", "50", "60000/1001", "60")
)


def _adapter_rate(otio, rate: float, name: str) -> float:
    """The rate the adapter is to write the EDL's timecodes at: the edit rate where its timecode counts at that
    rate (the SMPTE rates), else the lowest SMPTE rate that is a whole multiple of it (24 for 12 fps, 30 for 15),
    from which _on_source_timecode counts every timecode back at the edit rate, exactly. TimelineExportError for a
    rate with no such multiple."""
    if otio.opentime.RationalTime.is_valid_timecode_rate(rate):
        return rate
    from semfi_batch.review.timecode import exact_rate

    exact = exact_rate(rate)
    for smpte in _SMPTE_RATES:
        if (smpte / exact).denominator == 1:
            return float(smpte)
    raise TimelineExportError(
        f"cannot write an EDL of {name} at {float(exact):g} fps: CMX 3600 timecode counts 23.976, 24, 25, 29.97, "
        "30, 47.952, 48, 50, 59.94 or 60 frames a second, or a rate that divides one of them (12, 15, ...); use --otio"
    )


def _markers_on_record_time(otio, track) -> None:
    """Each clip's markers moved from the clip's media time to the track's, which the adapter writes as the LOC
    timecode as it stands: a LOC is read on the record side (where the mark is on the timeline, as Avid writes
    them), and a generated clip's media time (its frames counted from 0) put every LOC at 00:00:00:00."""
    for clip in track.find_clips(shallow_search=True):
        shift = clip.range_in_parent().start_time - clip.source_range.start_time
        for marker in clip.markers:
            marker.marked_range = otio.opentime.TimeRange(
                marker.marked_range.start_time + shift, marker.marked_range.duration
            )


def _frame_files_by_name(otio, track) -> None:
    """Each generated clip's frames referred to by their file names, zero padding kept
    (.../frames/[000001-000003].png): the adapter writes an image sequence's FROM CLIP as [1-3].png, which
    names no file there, so nothing could relink by it."""
    for clip in track.find_clips(shallow_search=True):
        frames = clip.media_reference
        if not isinstance(frames, otio.schema.ImageSequenceReference):
            continue
        first, last = frames.frame_range_for_time_range(clip.trimmed_range())
        width = frames.frame_zero_padding
        names = f"{frames.name_prefix}[{first:0{width}d}-{last:0{width}d}]{frames.name_suffix}"
        clip.media_reference = otio.schema.ExternalReference(
            target_url=frames.target_url_base + names, available_range=frames.available_range
        )


_TC = r"\d\d:\d\d:\d\d[:;]\d\d"
_EVENT_TIMECODES = re.compile(rf"^(\d+)(.*?)({_TC}) ({_TC}) ({_TC}) ({_TC})(\s*)$")
# CMX 3600 event numbers have three digits: past 999 the numbering starts again at 001. The adapter's 1000 widened
# the number and shifted every fixed column after it, which strict readers refuse or misread; splitting the list
# into several files would leave `splice` naming one and `from-otio` reading one. Events are read in order and
# placed by their record timecodes, so a number used again is harmless (a number repeated on the very next
# event line is what marks a dissolve, and 999 is followed by 001).
_EVENT_NUMBERS = 999
_LOCATOR = re.compile(rf"^(\*\s*LOC:\s*)({_TC})(.*)$")
_TIMECODE = re.compile(rf"\b{_TC}\b")


def _on_source_timecode(text: str, record_start, start: str | None, counted_at: float) -> str:
    """The adapter's EDL, its timecodes counted at `counted_at` (_adapter_rate), with every timecode counted at the
    edit rate (`record_start`'s), its record timecodes (events' and LOC lines') moved to where the spliced
    output's timecode starts (`record_start`, in frames), every timecode written drop-frame or not as the
    source's `start` timecode is, an FCM line saying which, and event numbers of three digits (_EVENT_NUMBERS)."""
    from semfi_batch.review.timecode import exact_rate, frame_of_timecode, is_drop_frame, timecode

    rate = record_start.rate
    frames_per_count = exact_rate(rate) / exact_rate(counted_at)  # 1, or 1/2 for 12 fps counted at 24
    drop = is_drop_frame(rate, start)
    form = "00:00:00;00" if drop else "00:00:00:00"  # timecode() writes drop-frame as this zero is written

    def rewrite(tc: str, offset: int = 0) -> str:
        return timecode(int(frame_of_timecode(tc, counted_at) * frames_per_count) + offset, rate, form)

    shift = int(round(record_start.value))
    lines = []
    for line in text.splitlines():
        event = _EVENT_TIMECODES.match(line)
        if event:
            number, head, src_in, src_out, rec_in, rec_out, tail = event.groups()
            number = f"{(int(number) - 1) % _EVENT_NUMBERS + 1:03d}"
            record = f"{rewrite(rec_in, shift)} {rewrite(rec_out, shift)}"
            line = f"{number}{head}{rewrite(src_in)} {rewrite(src_out)} {record}{tail}"
        elif locator := _LOCATOR.match(line):  # on the record side, like the event's record timecodes
            line = f"{locator.group(1)}{rewrite(locator.group(2), shift)}{locator.group(3)}"
        else:
            line = _TIMECODE.sub(lambda m: rewrite(m.group(0)), line)
        lines.append(line)
        if line.startswith("TITLE:"):
            lines.append("FCM: DROP FRAME" if drop else "FCM: NON-DROP FRAME")
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def _atomic_write(path: Path, text: str) -> Path:
    from semfi_batch.atomic_write import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())
    return path


__all__ = [
    "EDL_PACKAGE",
    "TimelineExportError",
    "build_timeline",
    "check_edl_support",
    "edl_text",
    "write_edl",
    "write_otio",
]
