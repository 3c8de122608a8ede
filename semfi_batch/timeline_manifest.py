"""Edit timeline -> manifest: markers and flagged clips that an editor left on a timeline (OpenTimelineIO, or an
EDL / FCP XML through OTIO's adapters) become manifest rows on the media files they point at, so damage marked
in Resolve or Premiere needs no retyping of frame numbers.

What counts, on every video clip that refers to a media file:
- a marker on the clip: its range is in the clip's media time; a marker of one frame (or none) marks one frame;
- a marker on a track (or the timeline's stack): its range is in the track's time and lands on the clip below;
- a flagged clip: a clip with a colour (NLEs' clip flags) or `semfi_batch: {flag: true}` metadata; its whole
  source range is marked (razor the damaged frames into their own clip and flag it).
Marked frames are converted to 0-based frame numbers of the file (the media's own start timecode, from its
available range, is subtracted), overlapping or touching stretches on one file merge, and each stretch becomes
a `replace` row between the good frames around it (or, with mode insert, an `insert` row between the marked
frame's predecessor and the frame itself: a cut that needs a transition)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from semfi_batch.errors import SemfiError
from semfi_batch.manifest import check_writable, write_manifest


class TimelineError(SemfiError):
    """The timeline cannot be read or holds nothing to turn into rows."""

    exit_code = 2


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


def _otio():
    try:
        import opentimelineio as otio
    except ImportError:
        raise TimelineError("from-otio needs opentimelineio (pip install opentimelineio==0.18.1)") from None
    return otio


_EDL_TIMECODE = re.compile(r"\b\d\d:\d\d:\d\d[:;.]\d\d\b")


def _edl_in_frames(path: Path, rate: float) -> str:
    """An EDL's text with every timecode written non-drop-frame for the frame it names. The reader takes a
    LOC only in the form HH:MM:SS:FF (a drop-frame LOC, with ';', was dropped without a word) and reads ':'
    as non-drop (a drop-frame EDL's LOC written with ':' landed 110 frames off at the 11th minute): where
    the EDL says FCM: DROP FRAME, or a timecode is written with ';', each is counted drop-frame and written
    as the same frame's non-drop label, which the reader turns back into that frame."""
    from semfi_batch.review.timecode import NTSC_DROP_RATES, exact_rate, frame_of_timecode, timecode

    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise TimelineError(f"cannot read {path}: {exc.strerror}") from None
    drop = exact_rate(rate) in NTSC_DROP_RATES and (re.search(r"^FCM:\s*DROP", text, re.M) is not None or ";" in text)
    if not drop:
        return text

    def non_drop(match: re.Match) -> str:
        frames = frame_of_timecode(match.group(0)[:8] + ";" + match.group(0)[9:], rate)
        return timecode(frames, rate, "00:00:00:00")

    return _EDL_TIMECODE.sub(non_drop, text)


def read_timeline(path: Path, *, rate: float | None = None) -> Any:
    """The timelines in `path`, through the OTIO adapter its extension names (.otio, .edl, .xml, ...). An EDL
    carries no frame rate: `rate` gives it (OTIO's reader assumes 24)."""
    otio = _otio()
    path = Path(path)
    if not path.is_file():
        raise TimelineError(f"timeline not found: {path}")
    edl = path.suffix.lower() == ".edl"
    if rate:  # 29.97 and 23.976 as given on a command line: the NTSC rates OTIO's timecode takes, exactly
        from semfi_batch.review.timecode import exact_rate

        rate = float(exact_rate(rate))
    try:
        if edl and rate:
            obj = otio.adapters.read_from_string(_edl_in_frames(path, rate), adapter_name="cmx_3600", rate=rate)
        else:
            obj = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - adapters raise many exception types
        adapters = ", ".join(sorted(a.name for a in otio.plugins.ActiveManifest().adapters))
        hint = "; an EDL has no frame rate: give it with --rate (e.g. --rate 25)" if edl and not rate else ""
        raise TimelineError(
            f"cannot read {path} as a timeline ({type(exc).__name__}: {exc}){hint}; adapters installed here: "
            f"{adapters} (EDL: pip install otio-cmx3600-adapter; FCP XML: pip install otio-fcp-adapter)"
        ) from None
    timelines = [obj] if isinstance(obj, otio.schema.Timeline) else list(obj.find_children(kind=otio.schema.Timeline))
    if not timelines:
        raise TimelineError(f"{path} holds no timeline")
    return timelines


def marked_stretches(
    path: Path, *, color: str | None = None, rate: float | None = None
) -> tuple[list[MarkedStretch], list[str]]:
    """Every marked stretch of every video clip of the timeline(s) in `path`, and notes on what was skipped.
    `color` keeps only markers and flagged clips of that colour (RED, GREEN, ...)."""
    otio = _otio()
    path = Path(path)
    notes: list[str] = []
    stretches: list[MarkedStretch] = []
    starts: dict[Path, int] = {}
    wanted = color.upper() if color else None
    for timeline in read_timeline(path, rate=rate):
        for track in timeline.video_tracks():
            track_markers = [*track.markers, *timeline.tracks.markers]
            for clip in track.find_clips(shallow_search=True):
                media = _media_path(otio, clip, path.parent)
                marks: list[tuple[int, int, str, str | None, str]] = []  # media first/last, reason, colour, comment
                rate = clip.source_range.start_time.rate if clip.source_range is not None else 24.0
                for marker in clip.markers:
                    if _color_ok(marker.color, wanted):
                        first, last = _range_frames(_at_rate(otio, marker.marked_range, rate))
                        marks.append((first, last, marker.name or "marker", str(marker.color), marker.comment or ""))
                flag = _flag(clip)
                if flag and _color_ok(flag, wanted) and clip.source_range is not None:
                    first, last = _range_frames(clip.source_range)
                    marks.append((first, last, f"flagged clip {clip.name}".strip(), flag.upper(), ""))
                in_parent = clip.range_in_parent()
                for marker in track_markers:
                    if not _color_ok(marker.color, wanted):
                        continue
                    # Stack markers: the stack's time is every track's (tracks start together).
                    overlap = _intersect(_at_rate(otio, marker.marked_range, rate), _at_rate(otio, in_parent, rate))
                    if overlap is None:
                        continue
                    a, b = overlap
                    # Track time -> the clip's media time.
                    offset = _frames(clip.source_range.start_time) - _frames(in_parent.start_time.rescaled_to(rate))
                    marks.append((a + offset, b + offset, marker.name or "marker", str(marker.color), marker.comment))
                if not marks:
                    continue
                if media is None:
                    notes.append(f"clip {clip.name!r}: marked, but it refers to no media file; left out")
                    continue
                start = _media_start(clip, media, starts)
                record = _frames(in_parent.start_time.rescaled_to(rate)) - _frames(clip.source_range.start_time)
                for first, last, reason, col, comment in marks:
                    stretches.append(
                        MarkedStretch(
                            media=media, first=first - start, last=last - start, reasons=[reason],
                            record_frame=record + first, colors={col} if col else set(),
                            comments=[comment] if comment else [],
                        )
                    )  # fmt: skip
    return _merge(stretches), notes


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


def _media_start(clip, media: Path, cache: dict[Path, int]) -> int:
    """Frame number of the file's first frame in the timeline's terms: the start of the media's available range
    when the timeline gives it (OTIO), else the file's own start timecode (EDLs count from it), else 0."""
    available = getattr(clip.media_reference, "available_range", None)
    if available is not None:
        return _frames(available.start_time)
    if media not in cache:
        cache[media] = _file_timecode_start(media)
    return cache[media]


def _file_timecode_start(media: Path) -> int:
    """The file's start timecode (a QuickTime tmcd track or a timecode tag) as a frame count; 0 without one."""
    import json

    from semfi_batch.media.probe import start_timecode
    from semfi_batch.media.tools import run_tool
    from semfi_batch.review.timecode import start_frame_number

    if not media.is_file():
        return 0
    entries = "format_tags=timecode:stream_tags=timecode:stream=avg_frame_rate,codec_type"
    args = ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(media)]
    try:
        info = json.loads(run_tool(args, what=f"cannot probe {media}"))
    except (SemfiError, ValueError):
        return 0
    streams = info.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), {})
    rate = video.get("avg_frame_rate") or "0/1"
    num, _, den = rate.partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 0.0
    code = start_timecode(streams, info.get("format") or {})
    return (start_frame_number(code, fps) or 0) if fps > 0 else 0


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
    rate: float | None = None,
) -> TimelineManifest:
    """Write a manifest of one row per marked stretch of `timeline`; see the module's docstring."""
    if mode not in ("replace", "insert"):
        raise TimelineError(f"--mode must be replace or insert, got {mode!r}")
    if mode == "insert" and gap < 1:
        raise TimelineError(f"--gap must be at least 1, got {gap}")
    check_writable(output)
    stretches, notes = marked_stretches(timeline, color=color, rate=rate)
    rows: list[dict[str, Any]] = []
    used: set[str] = set()
    frame_counts: dict[Path, int | None] = {}
    for s in stretches:
        count = _frame_count(s.media, frame_counts, notes)
        if mode == "replace":
            start, end = s.first - 1, s.last + 1
        else:
            start, end = s.first - 1, s.first
        where = f"{s.media.name} frames {s.first}-{s.last}"
        if start < 0:
            notes.append(f"{where}: starts at the file's first frame (no keyframe before it); left out")
            continue
        if count is not None and end >= count:
            notes.append(f"{where}: reaches the file's end ({count} frames; no keyframe after it); left out")
            continue
        pair_id = _pair_id(s.media, s.first, used)
        row: dict[str, Any] = {
            "pair_id": pair_id, "source": str(s.media), "start_frame": start, "end_frame": end, "mode": mode,
            "reason": "; ".join(s.reasons), "marker_color": ",".join(sorted(s.colors)) or None,
            "comment": " / ".join(s.comments) or None, "record_frame": s.record_frame,
        }  # fmt: skip
        if mode == "insert":
            row["gap_frames"] = gap
        rows.append(row)
    if not rows:
        raise TimelineError(
            f"{timeline}: no markers or flagged clips on video clips with media"
            + (f" (colour {color})" if color else "")
            + ("; " + "; ".join(notes) if notes else "")
        )
    write_manifest(rows, output)
    return TimelineManifest(output=Path(output), rows=rows, notes=notes)


def _frame_count(media: Path, cache: dict[Path, int | None], notes: list[str]) -> int | None:
    if media not in cache:
        from semfi_batch.media.probe import probe_video

        try:
            cache[media] = probe_video(media).frame_count
        except SemfiError as exc:
            cache[media] = None
            notes.append(f"{media}: {exc} (rows kept; `manifest validate` checks them once the media is here)")
    return cache[media]


def _pair_id(media: Path, first: int, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", media.stem).strip("._-")[:100] or "clip"
    if not stem[0].isalnum():
        stem = f"m{stem}"
    pair_id = f"{stem}-{first:06d}"
    n = 2
    while pair_id in used:
        pair_id = f"{stem}-{first:06d}-{n}"
        n += 1
    used.add(pair_id)
    return pair_id
