"""Validation with row/column errors: every row checked and every problem found in one pass; load_manifest
reads a manifest and validates it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from semfi_batch.errors import ManifestProblem
from semfi_batch.manifest.media_checks import MediaChecker
from semfi_batch.manifest.rows import Row, blank_to_null, normalize, retyped
from semfi_batch.manifest.schema import KNOWN_COLUMNS, MAX_GAP_FRAMES, MODES, KeyframePair, Manifest, pair_id_problem
from semfi_batch.manifest.tables import raise_problems, read_table_with_problems, with_lines
from semfi_batch.plan import default_seed


def load_manifest(path: Path, *, check_media: bool = True, known_backends: Iterable[str] | None = None) -> Manifest:
    """Read and validate a manifest. Raises ManifestError listing every problem found."""
    path = Path(path)
    table, lines, cell_problems = read_table_with_problems(path)
    # Cells that did not fit their column (CSV) are empty in the table and marked, so every other problem is
    # still found in the same pass; the problems are listed row by row.
    invalid: dict[int, set[str]] = {}
    for p in cell_problems:
        if p.row is not None and p.column is not None:
            invalid.setdefault(p.row, set()).add(p.column)
    pairs, problems = _validate(
        table, path, check_media=check_media, known_backends=known_backends, invalid=invalid, lines=lines
    )
    raise_problems(path, with_lines([*cell_problems, *problems], lines))
    extra = [c for c in table.column_names if c not in KNOWN_COLUMNS]
    return Manifest(path=path, pairs=pairs, extra_columns=extra)


def _validate(
    table: pa.Table,
    path: Path,
    *,
    check_media: bool,
    known_backends: Iterable[str] | None,
    invalid: Mapping[int, set[str]] | None = None,
    lines: list[int] | None = None,
) -> tuple[list[KeyframePair], list[ManifestProblem]]:
    """The rows as pairs, and every problem found. `invalid`: per row, the columns already reported (cells
    that did not fit); `lines`: each row's CSV line, for messages that name another row."""
    problems: list[ManifestProblem] = []
    names = table.column_names
    if "pair_id" not in names:
        hint = _hint(["pair_id"], names)
        problems.append(ManifestProblem(None, None, "pair_id", "required column is missing" + hint))
    if not ({"start_image", "end_image"} <= set(names) or {"source", "start_frame", "end_frame"} <= set(names)):
        hints = [_hint([c for c in group if c not in names], names) for group in (_IMAGE_COLUMNS, _VIDEO_COLUMNS)]
        problems.append(
            ManifestProblem(
                None, None, None,
                "keyframe columns missing: give start_image and end_image, or source, start_frame and end_frame"
                + max(hints, key=lambda h: h.count(" for ")),
            )
        )  # fmt: skip
    if problems:  # a manifest from another tool: say what it has
        last = problems[-1]
        columns = ", ".join(names) or "none"
        problems[-1] = ManifestProblem(None, None, last.column, f"{last.message}; the file's columns: {columns}")
    if problems:
        return [], problems
    table, mistyped = retyped(table, problems)
    invalid = {row: set(columns) for row, columns in (invalid or {}).items()}
    for name, rows in mistyped.items():
        for row in rows:
            invalid.setdefault(row, set()).add(name)

    if known_backends is None:
        from semfi_batch.backends import backend_names

        known_backends = [*backend_names(), "auto"]  # auto: resolved per row by backends/routing.py
    known_backends = set(known_backends)
    base = path.parent
    media = MediaChecker(base, check_media)
    seen: dict[str, int] = {}
    pairs: list[KeyframePair] = []
    extras_cols = [c for c in names if c not in KNOWN_COLUMNS]
    table, reported = normalize(table, problems)
    for index, columns in (invalid or {}).items():
        reported.setdefault(index, set()).update(columns)
    no_invalid: set[str] = set()
    for index, values in enumerate(blank_to_null(table.to_pylist(), names)):
        row = Row(index, values, problems, reported.get(index, no_invalid))
        pair = _validate_row(row, media, known_backends, extras_cols)
        if row.pair_id is not None:
            if row.pair_id in seen:
                first = seen[row.pair_id]
                row.problem("pair_id", f"duplicate of row {first}" + (f" on line {lines[first]}" if lines else ""))
                pair = None
            else:
                seen[row.pair_id] = index
        if pair is not None:
            pairs.append(pair)
    return pairs, problems


def _hint(missing: list[str], names: list[str]) -> str:
    """'; did you mean ...' for columns of the file that look like the missing ones (other tools' names)."""
    import difflib

    guesses = []
    lowered = {n.lower(): n for n in names}
    for col in missing:
        near = [lowered[m] for m in difflib.get_close_matches(col.lower(), list(lowered), n=1, cutoff=0.6)]
        near += [n for n in names if n.lower() in _SYNONYMS.get(col, ()) and n not in near]
        if near:
            guesses.append(f"{near[0]!r} for {col}")
    return f" (rename {', '.join(guesses)}?)" if guesses else ""


_IMAGE_COLUMNS = ("start_image", "end_image")
_VIDEO_COLUMNS = ("source", "start_frame", "end_frame")
# Column names other tools use for ours, for the rename hint.
_SYNONYMS = {
    "pair_id": ("id", "name", "key", "clip_id", "shot", "event"),
    "source": ("video", "file", "path", "media", "clip", "filename", "source_file"),
    "start_frame": ("first", "start", "in", "frame_in", "first_frame", "src_in"),
    "end_frame": ("last", "end", "out", "frame_out", "last_frame", "src_out"),
    "start_image": ("first_image", "key1", "image_a", "start_key"),
    "end_image": ("last_image", "key2", "image_b", "end_key"),
}


def _validate_row(
    row: Row, media: MediaChecker, known_backends: set[str], extras_cols: list[str]
) -> KeyframePair | None:
    before = len(row.problems)
    pair_id = row.get("pair_id")
    if pair_id is None:
        row.problem("pair_id", "is required")
    elif (why := pair_id_problem(pair_id)) is not None:
        row.problem("pair_id", why)

    start_image, end_image, source = row.get("start_image"), row.get("end_image"), row.get("source")
    start_frame, end_frame = row.get("start_frame"), row.get("end_frame")
    mode, gap = row.get("mode"), row.get("gap_frames")
    is_video = source is not None
    if is_video and (start_image is not None or end_image is not None):
        row.problem("source", "give either source (video) or start_image/end_image, not both")
        return None
    if not is_video and start_image is None and end_image is None:
        row.problem("start_image", "no keyframes: give start_image and end_image, or source with frames")
        return None

    mode_ok = True
    if mode is None:
        mode = "replace" if is_video else "insert"
    elif mode.strip().lower() in MODES:
        mode = mode.strip().lower()  # 'Replace' from a spreadsheet means replace
    else:
        row.problem("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        mode_ok = False
    if not is_video and mode == "replace":
        row.problem("mode", "replace needs a video source; image pairs can only be insert")

    keyframe_size = None
    if is_video:
        for col, value in (("start_frame", start_frame), ("end_frame", end_frame)):
            if value is None:
                if col not in row.invalid:
                    row.problem(col, "is required for a video row")
            elif value < 0:
                row.problem(col, f"must be >= 0, got {value}")
        if start_frame is not None and end_frame is not None and start_frame >= end_frame:
            row.problem("end_frame", f"must be greater than start_frame ({start_frame}), got {end_frame}")
        info = media.video(row, source)
        if info is not None:
            keyframe_size = (info.width, info.height)
            for col, value in (("start_frame", start_frame), ("end_frame", end_frame)):
                if value is not None and value >= info.frame_count:
                    row.problem(col, f"frame {value} is past the end of {source} ({info.frame_count} frames)")
    else:
        sizes = []
        for col, value in (("start_image", start_image), ("end_image", end_image)):
            if value is None:
                if col not in row.invalid:
                    row.problem(col, "is required for an image pair")
            else:
                sizes.append(media.image(row, col, value))
        if len(sizes) == 2 and None not in sizes:
            if sizes[0] != sizes[1]:
                row.problem(
                    "end_image",
                    f"size {sizes[1][0]}x{sizes[1][1]} differs from start_image's {sizes[0][0]}x{sizes[0][1]}",
                )
            keyframe_size = sizes[0]

    frames_ok = start_frame is None or end_frame is None or start_frame < end_frame  # else reported above
    gap_given = gap is not None
    if not mode_ok or not frames_ok:
        pass  # gap_frames follows from mode and frames: nothing to say about a column the user may not have set
    elif mode == "replace" and is_video:
        if start_frame is not None and end_frame is not None:  # a missing index is reported above
            derived = end_frame - start_frame - 1
            if derived < 1:
                row.problem("end_frame", "replace needs at least one frame between start_frame and end_frame")
            elif gap is not None and gap != derived:
                row.problem(
                    "gap_frames",
                    f"is {gap} but replace between frames {start_frame} and {end_frame} gives {derived}",
                )
            gap = derived if gap is None else gap
    elif gap is None:
        if "gap_frames" not in row.invalid:
            row.problem("gap_frames", "is required for insert rows")
    elif is_video and start_frame is not None and end_frame is not None and gap < end_frame - start_frame - 1:
        # An insert keeps every frame: across frames it may replace them (damage beside a hole in the
        # timestamps), never drop some (the splice would play the stretch with fewer frames, exit 0).
        row.problem(
            "gap_frames",
            f"is {gap} but insert between frames {start_frame} and {end_frame} must fill at least the "
            f"{end_frame - start_frame - 1} frames between them (replace regenerates frames in place)",
        )
    if gap_given and not 1 <= gap <= MAX_GAP_FRAMES:
        row.problem("gap_frames", f"must be between 1 and {MAX_GAP_FRAMES}, got {gap}")
    elif not gap_given and gap is not None and gap > MAX_GAP_FRAMES:
        row.problem("end_frame", f"replace of {gap} frames is over the {MAX_GAP_FRAMES} frame limit")

    width, height = row.get("width"), row.get("height")
    if (width is None) != (height is None):
        row.problem("width" if width is None else "height", "give width and height together, or neither")
    for col, value in (("width", width), ("height", height), ("steps", row.get("steps"))):
        if value is not None and value <= 0:
            row.problem(col, f"must be positive, got {value}")
    cfg = row.get("cfg_scale")
    if cfg is not None and (not math.isfinite(cfg) or cfg < 0):
        row.problem("cfg_scale", f"must be a finite number >= 0, got {cfg}")
    seed = row.get("seed")
    if seed is not None and not 0 <= seed < 2**63:
        row.problem("seed", f"must be between 0 and 2**63 - 1, got {seed}")
    backend = row.get("backend")
    if backend is not None and backend not in known_backends:
        row.problem("backend", f"unknown backend {backend!r}; known: {', '.join(sorted(known_backends))}")

    if len(row.problems) > before or row.invalid:
        return None
    return KeyframePair(
        row=row.index,
        pair_id=pair_id,
        mode=mode,
        gap_frames=int(gap),
        seed=int(seed) if seed is not None else default_seed(pair_id),
        start_image=media.resolve(start_image) if start_image else None,
        end_image=media.resolve(end_image) if end_image else None,
        source=media.resolve(source) if source else None,
        start_frame=start_frame,
        end_frame=end_frame,
        prompt=row.get("prompt") or "",
        negative_prompt=row.get("negative_prompt") or "",
        width=width,
        height=height,
        steps=row.get("steps"),
        cfg_scale=cfg,
        backend=backend,
        keyframe_size=keyframe_size,
        extras={c: _plain(row.values.get(c)) for c in extras_cols},
    )


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
