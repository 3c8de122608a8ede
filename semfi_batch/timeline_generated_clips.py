"""A splice's timeline read back: a generated clip of a timeline that `splice --otio/--edl` wrote stands for the
row that made it. Marked (its review marker, or one the editor added) or flagged, it becomes that row again
(source, keyframes, mode, gap), so the timeline reads back onto the run's own frames. In .otio its metadata says
which row; in an EDL its name (`<pair_id> (replace|insert)`) gives the row's mode, the source clips around it its
keyframes (the frame before it and the frame after it) and its length the gap.

timeline_manifest finds the marks and maps clips onto their files; this module says what a generated clip's
row is."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_GENERATED_NAME = re.compile(r"^(?P<pair_id>.+) \((?P<mode>replace|insert)\)$")


@dataclass
class MarkedEdit:
    """A marked generated clip of a splice's timeline: the row that made it (`gap_frames` as spliced)."""

    media: Path
    start_frame: int
    end_frame: int
    mode: str
    gap_frames: int
    pair_id: str
    reasons: list[str]
    record_frame: int
    colors: set[str] = field(default_factory=set)
    comments: list[str] = field(default_factory=list)


@dataclass
class GeneratedClip:
    """A clip that says it holds generated frames: by splice's metadata (`kind: generated`), or by its name."""

    clip: Any
    meta: dict[str, Any]
    named: re.Match | None


def _semfi_meta(obj) -> dict[str, Any]:
    meta = obj.metadata.get("semfi_batch") if hasattr(obj.metadata, "get") else None
    return dict(meta) if meta is not None and hasattr(meta, "get") else {}


def generated_clip(clip) -> GeneratedClip | None:
    """`clip` as a generated clip of a splice's timeline, or None for one that does not say it is."""
    meta = _semfi_meta(clip)
    meta = meta if meta.get("kind") == "generated" else {}
    named = _GENERATED_NAME.match(clip.name or "")
    return GeneratedClip(clip, meta, named) if meta or named is not None else None


def generated_row(generated: GeneratedClip, timeline, base: Path, around: dict[str, Any]):
    """The row a generated clip stands for, as a dict (media, start_frame, end_frame, mode, gap_frames, pair_id);
    None where it is only named like one; a note when it is one but its row cannot be told. `around`: the file
    frames the source clips on either side of it end and begin on (its keyframes), {} where there are none."""
    clip, meta, named = generated.clip, generated.meta, generated.named
    if not meta and not around:
        return None  # a clip named like one, but not between two stretches of one source
    # The timeline's own source (exports before clips named theirs) may be relative to where splice ran.
    source = meta.get("source") or (None if around else _semfi_meta(timeline).get("source"))
    row = {
        "media": (base / Path(source)) if source else around.get("media"),
        "start_frame": meta.get("start_frame", around.get("start_frame")),
        "end_frame": meta.get("end_frame", around.get("end_frame")),
        "mode": meta.get("mode") or (named.group("mode") if named else None),
        "gap_frames": meta.get("gap_frames") or int(round(clip.duration().value)),
        "pair_id": str(meta.get("pair_id") or (named.group("pair_id") if named else clip.name)),
    }
    if any(row[k] is None for k in ("media", "start_frame", "end_frame", "mode")):
        return (
            f"clip {clip.name!r}: generated frames, but the source frames they stand for cannot be told "
            "(no source clips of one file on either side of it); left out"
        )
    row["start_frame"], row["end_frame"] = int(row["start_frame"]), int(row["end_frame"])
    between = row["end_frame"] - row["start_frame"] - 1
    if not meta and (row["gap_frames"] < between or (row["mode"] == "replace" and row["gap_frames"] != between)):
        return (
            f"clip {clip.name!r}: {row['gap_frames']} generated frames do not fill the {between} between its "
            f"keyframes {row['start_frame']} and {row['end_frame']} (trimmed in the edit?); left out"
        )
    return row


def add_edit(edits: dict[tuple, MarkedEdit], row: dict[str, Any], marks: list, record_frame: int) -> None:
    """One MarkedEdit per row, however many marks (each with a reason, color and comment) its clip (or clips, on
    several tracks) carries."""
    key = (row["media"], row["start_frame"], row["end_frame"], row["mode"], row["gap_frames"])
    edit = edits.get(key)
    if edit is None:
        edit = edits[key] = MarkedEdit(**row, reasons=[], record_frame=record_frame)
    for mark in marks:
        if mark.reason not in edit.reasons:
            edit.reasons.append(mark.reason)
        if mark.color:
            edit.colors.add(mark.color)
        if mark.comment and mark.comment not in edit.comments:
            edit.comments.append(mark.comment)
