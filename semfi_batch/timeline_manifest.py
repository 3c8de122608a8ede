"""Edit timeline -> manifest: markers and flagged clips that an editor left on a timeline (OpenTimelineIO, or an
EDL / FCP XML through OTIO's adapters) become manifest rows on the media files they point at, so damage marked
in Resolve or Premiere needs no retyping of frame numbers.

What counts, on every video clip that refers to a media file:
- a marker on the clip: its range is in the clip's media time; a marker of one frame (or none) marks one frame;
- a marker on a track (or the timeline's stack): its range is in the track's time and lands on the clip below
  (through the clip's speed, where it has a time warp: an EDL's M2);
- a flagged clip: a clip with a colour (NLEs' clip flags) or `semfi_batch: {flag: true}` metadata; its whole
  source range is marked (razor the damaged frames into their own clip and flag it).
Marked frames are converted to 0-based frame numbers of the file (the media's own start timecode, from its
available range, is subtracted), overlapping or touching stretches on one file merge, and each stretch becomes
a `replace` row between the good frames around it (or, with mode insert, an `insert` row between the marked
frame's predecessor and the frame itself: a cut that needs a transition).

A generated clip of a timeline that `splice --otio/--edl` wrote stands for the row that made it: see
timeline_generated_clips.

An EDL's LOC timecode is read on the record side, where the mark is on the timeline (as Avid writes LOCs, and
splice --edl does); one outside its event's record range and inside its source range is a source timecode (as
OTIO's cmx_3600 adapter writes a clip's marker). One inside both is read as the EDL's writer means it, with a
note: on the record side where the EDL has an FCM line, on the source side where it has none (OTIO's writer)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from semfi_batch.errors import SemfiError
from semfi_batch.manifest import check_writable, write_manifest
from semfi_batch.timeline_file import EDL_REVERSED, EdlCounting, TimelineError, otio_module, read_timeline
from semfi_batch.timeline_generated_clips import MarkedEdit, add_edit, generated_clip, generated_row


@dataclass
class MarkedStretch:
    """Frames [first, last] (0-based, inclusive) of `media` that a marker or flag points at."""

    media: Path
    first: int
    last: int
    reasons: list[str]
    record_frame: int  # where the stretch starts on the timeline (frames from its start)
    colors: set[str] = field(default_factory=set)
    comments: list[str] = field(default_factory=list)


@dataclass
class TimelineManifest:
    """What from-otio wrote and what it left out."""

    output: Path
    rows: list[dict[str, Any]]
    notes: list[str]


@dataclass
class _Mark:
    """Frames [first, last] of a clip's media time that a marker or flag points at, and where the first sits on
    the timeline."""

    first: int
    last: int
    record_frame: int
    reason: str
    color: str | None
    comment: str


def marked_stretches(
    path: Path, *, color: str | None = None, rate: float | None = None
) -> tuple[list[MarkedStretch], list[MarkedEdit], list[str]]:
    """Every marked stretch of every video clip of the timeline(s) in `path`, every marked generated clip of a
    splice's timeline, and notes on what was left out. `color` keeps only markers and flagged clips of that
    colour (RED, GREEN, ...)."""
    otio = otio_module()
    path = Path(path)
    notes: list[str] = []
    stretches: list[MarkedStretch] = []
    edits: dict[tuple, MarkedEdit] = {}
    wanted = color.upper() if color else None
    timelines, counting = read_timeline(path, rate=rate)
    file_frames = _FileFrames(counting)
    for timeline in timelines:
        for track in timeline.video_tracks():
            track_markers = [*track.markers, *timeline.tracks.markers]
            # The adapter starts an EDL's track at minus the first record timecode: record = track time - this.
            track_start = _frames(track.source_range.start_time) if counting and track.source_range is not None else 0
            items = list(track)
            for index, clip in enumerate(items):
                if not isinstance(clip, otio.schema.Clip):
                    continue
                try:  # its source range, or without one its media's available range
                    source_range = clip.trimmed_range()
                except otio.exceptions.CannotComputeAvailableRangeError:
                    continue
                clip_rate = source_range.start_time.rate
                in_parent = clip.range_in_parent()
                record_in = _frames(in_parent.start_time.rescaled_to(clip_rate))
                source_in = _frames(source_range.start_time)
                speed = _speed(otio, clip)
                marks: list[_Mark] = []
                ambiguous: list[tuple[str, int, int]] = []  # LOCs on both sides: name, media frame taken, the other
                for marker in clip.markers:
                    if _color_ok(marker.color, wanted):
                        first, last = _range_frames(_at_rate(otio, marker.marked_range, clip_rate))
                        if counting is not None:  # an EDL's clip has a source range
                            first, last, other = _locator_on_media(
                                first, last, clip, in_parent, track_start, counting, speed
                            )
                            if other is not None:
                                ambiguous.append((marker.name or "LOC", first, other))
                        marks.append(
                            _Mark(first, last, record_in + _record_offset(first - source_in, speed),
                                  marker.name or "marker", str(marker.color), marker.comment or "")
                        )  # fmt: skip
                flag = _flag(clip)
                if flag and _color_ok(flag, wanted):
                    first, last = _played_media(source_in, 0, _frames(source_range.duration) - 1, speed)
                    marks.append(_Mark(first, last, record_in, f"flagged clip {clip.name}".strip(), flag.upper(), ""))
                for marker in track_markers:
                    if not _color_ok(marker.color, wanted):
                        continue
                    # Stack markers: the stack's time is every track's (tracks start together).
                    overlap = _intersect(
                        _at_rate(otio, marker.marked_range, clip_rate), _at_rate(otio, in_parent, clip_rate)
                    )
                    if overlap is None:
                        continue
                    a, b = overlap
                    first, last = _played_media(source_in, a - record_in, b - record_in, speed)
                    marks.append(_Mark(first, last, a, marker.name or "marker", str(marker.color), marker.comment))
                if not marks:
                    continue
                if speed is None:
                    notes.append(
                        f"clip {clip.name!r}: marked, but it is a freeze frame, reversed or retimed in a way that "
                        "maps no timeline frame onto one frame of its media; left out"
                    )
                    continue
                generated = generated_clip(clip)
                if generated is not None:
                    around = _source_frames_around(otio, items, index, path.parent, file_frames)
                    row = generated_row(generated, timeline, path.parent, around)
                    if isinstance(row, str):
                        notes.append(row)
                        continue
                    if row is not None:
                        add_edit(edits, row, marks, record_in)
                        continue
                media = _media_path(otio, clip, path.parent)
                if media is None:
                    notes.append(f"clip {clip.name!r}: marked, but it refers to no media file; left out")
                    continue
                for name, taken, other in ambiguous:
                    taken_frame, other_frame = file_frames.of(clip, media, taken), file_frames.of(clip, media, other)
                    notes.append(_ambiguous_locator_note(name, media, taken_frame, other_frame, counting.has_fcm))
                for mark in marks:
                    on_file = file_frames.of(clip, media, mark.first)
                    stretches.append(
                        MarkedStretch(
                            media=media, first=on_file, last=on_file + mark.last - mark.first, reasons=[mark.reason],
                            record_frame=mark.record_frame, colors={mark.color} if mark.color else set(),
                            comments=[mark.comment] if mark.comment else [],
                        )
                    )  # fmt: skip
    return _merge(stretches), list(edits.values()), notes


def _speed(otio, clip) -> float | None:
    """Media frames per timeline frame of `clip`: 1, or its time warps' scalar (an EDL's M2 becomes one); None
    where timeline frames do not map forwards onto media frames (a freeze frame, a reverse, another time
    effect)."""
    cmx = clip.metadata.get("cmx_3600") if hasattr(clip.metadata, "get") else None
    if cmx is not None and hasattr(cmx, "get") and EDL_REVERSED in (cmx.get("comments") or []):
        return None
    speed = 1.0
    for effect in clip.effects:
        if isinstance(effect, otio.schema.LinearTimeWarp):  # a FreezeFrame is one, of scalar 0
            speed *= effect.time_scalar
        elif isinstance(effect, otio.schema.TimeEffect):
            return None
    return speed if speed > 0 else None


def _played_media(source_in: int, first: int, last: int, speed: float | None) -> tuple[int, int]:
    """Media frames that timeline frames [first, last] of a clip (counted from its start) play, at `speed`: at
    half speed each media frame plays twice, at double speed each timeline frame spans two."""
    speed = speed or 1.0
    lo = source_in + math.floor(first * speed + 1e-9)
    return lo, max(lo, source_in + math.ceil((last + 1) * speed - 1e-9) - 1)


def _record_offset(media_offset: int, speed: float | None) -> int:
    """The first frame of a clip (counted from its start) that plays media frame `media_offset` of it."""
    return math.ceil(media_offset / (speed or 1.0) - 1e-9)


def _ambiguous_locator_note(name: str, media: Path, taken: int, other: int, has_fcm: bool) -> str:
    """What was made of a LOC that both sides of its event hold (see _locator_on_media)."""
    if has_fcm:
        side, writer = "record", "an FCM line, as Avid, Premiere, Resolve and splice --edl write LOCs on that side"
    else:
        side, writer = "source", "no FCM line, as OTIO's EDL writer writes a clip's markers at source timecode"
    return (
        f"LOC {name!r} on {media.name}: its timecode is inside both its event's record and source range; read on "
        f"the {side} side (the EDL has {writer}): frame {taken}, not {other}"
    )


def _locator_on_media(
    first: int, last: int, clip, in_parent, track_start: int, counting: EdlCounting, speed: float | None
) -> tuple[int, int, int | None]:
    """An EDL LOC's frames (which the adapter keeps as they are written, as if in the clip's media) in the
    clip's media, and the first frame of the reading not taken where both sides could hold it. A LOC inside its
    event's record range only is on the record side (through the event's speed); one inside its source range
    only, or in neither, is a source timecode. Inside both (media and timeline both from 00:00:00:00, as phone
    files and OTIO's default record start are), the EDL's writer decides: with an FCM line the record side
    (Avid, Premiere, Resolve, splice --edl), without one the source side (OTIO's own EDL writer). Both ranges are
    tested modulo a day: either may pass midnight, where the LOC's timecode wraps."""
    source_in = _frames(clip.source_range.start_time)
    record_offset = (first - (_frames(in_parent.start_time) - track_start)) % counting.day_frames
    source_offset = (first - source_in) % counting.day_frames
    duration = _frames(in_parent.duration)
    on_record = record_offset < duration
    on_source = source_offset < _played_media(0, 0, duration - 1, speed)[1] + 1
    record_first, record_last = _played_media(source_in, record_offset, record_offset + last - first, speed)
    source_first, source_last = source_in + source_offset, source_in + source_offset + last - first
    if on_record and on_source and record_first != source_first:
        if counting.has_fcm:
            return record_first, record_last, source_first
        return source_first, source_last, record_first
    if on_record:
        return record_first, record_last, None
    if on_source:
        return source_first, source_last, None
    return first, last, None


def _source_frames_around(otio, items: list, index: int, base: Path, file_frames: _FileFrames) -> dict[str, Any]:
    """The file frames a clip sits between, where the clips on either side are stretches of one file: the last
    frame of the one before and the first of the one after (a generated clip's keyframes); {} otherwise."""
    before = items[index - 1] if index > 0 else None
    after = items[index + 1] if index + 1 < len(items) else None
    if not all(isinstance(c, otio.schema.Clip) and c.source_range is not None for c in (before, after)):
        return {}
    media = _media_path(otio, before, base)
    if media is None or media != _media_path(otio, after, base):
        return {}
    start = file_frames.of(before, media, _range_frames(before.source_range)[1])
    end = file_frames.of(after, media, _frames(after.source_range.start_time))
    return {"media": media, "start_frame": start, "end_frame": end} if start < end else {}


def _color_ok(color: Any, wanted: str | None) -> bool:
    return wanted is None or str(color).upper() == wanted


def _flag(clip) -> str | None:
    """The clip's flag colour: OTIO's clip colour, or 'FLAG' for `semfi_batch: {flag: true}` metadata."""
    meta = clip.metadata.get("semfi_batch") if hasattr(clip.metadata, "get") else None
    if meta is not None and hasattr(meta, "get") and meta.get("flag"):
        return str(meta.get("color") or "FLAG")
    color = getattr(clip, "color", None)
    return color.name.upper() if color is not None and color.name else None


def _frames(t) -> int:
    return int(round(t.value))


def _range_frames(rng) -> tuple[int, int]:
    """First and last frame (inclusive) of a range; a marker of zero length marks its one frame."""
    first = _frames(rng.start_time)
    return first, first + max(1, _frames(rng.duration)) - 1


def _intersect(rng, other) -> tuple[int, int] | None:
    """The frames two ranges share (inclusive), or None."""
    (a, b), (c, d) = _range_frames(rng), _range_frames(other)
    lo, hi = max(a, c), min(b, d)
    return (lo, hi) if lo <= hi else None


def _at_rate(otio, rng, rate: float):
    """`rng` with its times counted in frames of `rate` (a marker may be stored at another rate than its clip)."""
    return otio.opentime.TimeRange(rng.start_time.rescaled_to(rate), rng.duration.rescaled_to(rate))


@dataclass
class _FileFrames:
    """Frames of clips' media time as 0-based frames of their files: minus the media's start (`_media_start`), on
    an EDL's timecode modulo a day (`EdlCounting.on_file`)."""

    counting: EdlCounting | None
    starts: dict[Path, int] = field(default_factory=dict)

    def of(self, clip, media: Path, frame: int) -> int:
        start = _media_start(clip, media, self.starts, self.counting)
        return self.counting.on_file(frame, start) if self.counting is not None else frame - start


def _media_start(clip, media: Path, cache: dict[Path, int], counting: EdlCounting | None = None) -> int:
    """Frame number of the file's first frame in the timeline's terms: the start of the media's available range
    when the timeline gives it (OTIO), else the file's own start timecode (EDLs count from it), else 0. An EDL
    counted at another rate than the file's timecode (`counting.rate`, --rate) is refused: every mark would be
    read at the wrong frame."""
    available = getattr(clip.media_reference, "available_range", None)
    if available is not None:
        return _frames(available.start_time)
    if media not in cache:
        start, rate = _file_timecode(media)
        if counting is not None and rate is not None and round(rate) != round(counting.rate):
            raise TimelineError(
                f"{media}: its timecode counts {rate:g} frames a second, but the EDL was read at --rate "
                f"{counting.rate:g}; give --rate {rate:g} (the rate its source timecodes were counted at)"
            )
        cache[media] = start
    return cache[media]


def _file_timecode(media: Path) -> tuple[int, float | None]:
    """The file's start timecode (a QuickTime tmcd track or a timecode tag) as a frame count (0 without one),
    and the rate its timecode counts at (review/timecode.py `timecode_rate`; None when it cannot be probed)."""
    from semfi_batch.media.probe import probe_video
    from semfi_batch.review.timecode import file_timecode_rate, start_frame_number

    if not media.is_file():
        return 0, None
    try:
        info = probe_video(media)
    except SemfiError:
        return 0, None
    if not info.avg_fps:
        return 0, None
    rate = file_timecode_rate(media, info.avg_fps)
    return start_frame_number(info.timecode, rate) or 0, rate


def _media_path(otio, clip, base: Path) -> Path | None:
    ref = clip.media_reference
    url = getattr(ref, "target_url", None) if isinstance(ref, otio.schema.ExternalReference) else None
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif parts.scheme and len(parts.scheme) > 1:  # http:// and the like: not a file here
        return None
    else:
        path = Path(url)
    return path if path.is_absolute() else (base / path)


def _merge(stretches: list[MarkedStretch]) -> list[MarkedStretch]:
    """Overlapping or touching stretches of one file become one, in file then frame order."""
    out: list[MarkedStretch] = []
    for s in sorted(stretches, key=lambda s: (str(s.media), s.first, s.last)):
        prev = out[-1] if out else None
        if prev is not None and prev.media == s.media and s.first <= prev.last + 1:
            prev.last = max(prev.last, s.last)
            prev.reasons += [r for r in s.reasons if r not in prev.reasons]
            prev.colors |= s.colors
            prev.comments += [c for c in s.comments if c not in prev.comments]
            prev.record_frame = min(prev.record_frame, s.record_frame)
        else:
            out.append(s)
    return out


def timeline_to_manifest(
    timeline: Path,
    output: Path,
    *,
    mode: str = "replace",
    gap: int = 11,
    color: str | None = None,
    rate: str | float | None = None,
) -> TimelineManifest:
    """Write a manifest of one row per marked stretch of `timeline` (`mode` and `gap` say which rows) and per
    marked generated clip of a splice's timeline (its own row again); see the module's docstring."""
    if mode not in ("replace", "insert"):
        raise TimelineError(f"--mode must be replace or insert, got {mode!r}")
    if mode == "insert" and gap < 1:
        raise TimelineError(f"--gap must be at least 1, got {gap}")
    check_writable(output)
    stretches, edits, notes = marked_stretches(timeline, color=color, rate=rate)
    rows: list[dict[str, Any]] = []
    used: set[str] = set()
    frame_counts: dict[Path, int | None] = {}
    for s in stretches:
        if mode == "replace":
            start, end = s.first - 1, s.last + 1
        else:
            start, end = s.first - 1, s.first
        where = f"{s.media.name} frames {s.first}-{s.last}"
        if start < 0:
            notes.append(f"{where}: starts at the file's first frame (no keyframe before it); left out")
            continue
        count = _frame_count(s.media, frame_counts, notes)
        if count is not None and end >= count:
            notes.append(f"{where}: reaches the file's end ({count} frames; no keyframe after it); left out")
            continue
        rows.append(
            _row(_pair_id(s.media, s.first, used), s.media, start, end, mode, gap, s.reasons, s.colors, s.comments,
                 s.record_frame)
        )  # fmt: skip
    for e in edits:
        pair_id = _unique(e.pair_id, used)
        rows.append(
            _row(pair_id, e.media, e.start_frame, e.end_frame, e.mode, e.gap_frames, e.reasons, e.colors, e.comments,
                 e.record_frame)
        )  # fmt: skip
    if not rows:
        marked = "marks were found, but none gives a row" if notes else "no markers or flagged clips"
        raise TimelineError(
            f"{timeline}: {marked} on video clips with media"
            + (f" (colour {color})" if color else "")
            + (": " + "; ".join(notes) if notes else "")
        )
    rows.sort(key=lambda r: (r["source"], r["start_frame"], r["end_frame"]))
    write_manifest(rows, output)
    return TimelineManifest(output=Path(output), rows=rows, notes=notes)


def _row(pair_id, media, start, end, mode, gap, reasons, colors, comments, record_frame) -> dict[str, Any]:
    row: dict[str, Any] = {
        "pair_id": pair_id, "source": str(media), "start_frame": start, "end_frame": end, "mode": mode,
        "reason": "; ".join(reasons), "marker_color": ",".join(sorted(colors)) or None,
        "comment": " / ".join(comments) or None, "record_frame": record_frame,
    }  # fmt: skip
    if mode == "insert":
        row["gap_frames"] = gap
    return row


def _frame_count(media: Path, cache: dict[Path, int | None], notes: list[str]) -> int | None:
    """The file's frame count; None, with a note saying its rows are kept unchecked, when it cannot be read."""
    if media not in cache:
        from semfi_batch.media.probe import probe_video

        try:
            cache[media] = probe_video(media).frame_count
        except SemfiError as exc:
            cache[media] = None
            notes.append(f"{media}: {exc}; its rows are kept unchecked (`manifest validate` checks them once the "
                         "media is here)")  # fmt: skip
    return cache[media]


def _pair_id(media: Path, first: int, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", media.stem).strip("._-")[:100] or "clip"
    if not stem[0].isalnum():
        stem = f"m{stem}"
    return _unique(f"{stem}-{first:06d}", used)


def _unique(pair_id: str, used: set[str]) -> str:
    """`pair_id`, or with -2, -3, ... where a row already has it."""
    name, n = pair_id, 2
    while name in used:
        name = f"{pair_id}-{n}"
        n += 1
    used.add(name)
    return name
