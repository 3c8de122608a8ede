"""evaluate: every clip opened and checked and every backend's constraints checked before any work,
then each clip's shots found, its gaps planned, and the clip streamed once at the evaluation size, one window
of frames at a time, each gap scored by every backend."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from semfi_batch.backends import Backend, backend_class
from semfi_batch.errors import MediaError
from semfi_batch.evaluate.clips import Clip, clip_names, detect_cuts, open_clip
from semfi_batch.evaluate.gaps import Gap, plan_gaps
from semfi_batch.evaluate.scoring import evaluate_gap
from semfi_batch.evaluate.settings import EvalError, EvalSettings


@dataclass
class ClipReport:
    """What happened to one clip (for progress lines)."""

    clip: Clip
    frames: int
    shots: int
    gaps: int


def evaluate(
    clips: Sequence[Path],
    settings: EvalSettings,
    on_clip: Callable[[ClipReport], None] | None = None,
) -> list[dict]:
    """Evaluate every backend on every clip; return the rows (EVAL_COLUMNS), clip by clip."""
    if not settings.backends:
        raise EvalError("no backends to evaluate")
    opened = [open_clip(Path(p), settings.max_frames) for p in clips]  # all clips checked before any work
    for clip, name in zip(opened, clip_names([c.path for c in opened]), strict=True):
        clip.name = name
    backends = _open_backends(settings)
    try:
        for clip in opened:
            _check_constraints(clip, settings, backends)
        rows: list[dict] = []
        for clip in opened:
            rows += _evaluate_clip(clip, settings, backends, on_clip)
    finally:
        for backend in backends.values():
            backend.close()
    if not rows:
        raise EvalError(
            f"no gap of {settings.drop.gap_frames} frame(s) fits inside a shot of any clip ({settings.drop}); "
            "use longer clips, a smaller gap, or more --max-frames"
        )
    return rows


def _open_backends(settings: EvalSettings) -> dict[str, Backend]:
    names = list(dict.fromkeys(settings.backends))
    for name in names:  # availability of all first: nothing loads when one of them cannot run
        ok, why = backend_class(name).availability(settings.options)
        if not ok:
            raise EvalError(f"backend {name!r} cannot run here: {why}")
    return {name: backend_class(name)(settings.options) for name in names}


def _check_constraints(clip: Clip, settings: EvalSettings, backends: dict[str, Backend]) -> None:
    w, h = settings.size or (clip.width, clip.height)
    # A backend given fields sees half the height (the top field's (h + 1) // 2 rows, the bottom's h // 2).
    by_field = clip.field_order is not None
    heights = ((h + 1) // 2, h // 2) if by_field else (h,)
    for name, backend in backends.items():
        c = backend.constraints
        m = c.size_multiple
        if m > 1 and (w % m or any(x % m for x in heights)):
            fits = f"{w // m * m}x{h // (2 * m) * 2 * m}" if by_field else f"{w // m * m}x{h // m * m}"
            what = f", made per field ({w}x{h // 2} fields)" if by_field else ""
            raise EvalError(
                f"backend {name!r} needs sizes that are multiples of {m}; {clip.path} is evaluated at {w}x{h}"
                f"{what}: pass --size, e.g. {fits}"
            )
        if c.max_gap_frames is not None and settings.drop.gap_frames > c.max_gap_frames:
            raise EvalError(f"backend {name!r} fills at most {c.max_gap_frames} frames; --drop {settings.drop}")


def _evaluate_clip(
    clip: Clip, settings: EvalSettings, backends: dict[str, Backend], on_clip: Callable | None
) -> list[dict]:
    cuts, count = detect_cuts(clip)
    gaps = plan_gaps(count, cuts, settings.drop, settings.max_gaps)
    if on_clip:
        on_clip(ClipReport(clip, count, len(cuts) + 1, len(gaps)))
    rows: list[dict] = []
    # Thumbnails of the gap whose keys differ most, where backends differ most visibly; only the best so
    # far is kept, so a long clip costs no memory for pictures.
    best_change, best_index, best_thumbs = -1.0, -1, {}
    field_order = clip.field_order
    with tempfile.TemporaryDirectory(prefix="semfi-eval-") as work:
        for index, (gap, window) in enumerate(_windows(clip.frames(settings.size), gaps)):
            change = float(np.mean(cv2.absdiff(window[0], window[-1])))
            want = change > best_change
            gap_rows, thumbs = evaluate_gap(clip, field_order, settings, backends, index, gap, window, Path(work), want)
            if want:
                best_change, best_index, best_thumbs = change, index, thumbs
            rows += gap_rows
    for row in rows:
        if row["gap_index"] == best_index:
            row.update(best_thumbs["common"])
            row["thumb_output"] = best_thumbs.get(row["backend"])
    return rows


def _windows(frames: Iterator[np.ndarray], gaps: Sequence[Gap]) -> Iterator[tuple[Gap, list[np.ndarray]]]:
    """(gap, its frames from start to end key) for gaps in frame order; only one window is held at a time
    (consecutive windows share a key frame)."""
    pending = list(gaps)
    window: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        if not pending:
            break
        gap = pending[0]
        if i < gap.start:
            continue
        window.append(frame)
        if i == gap.end:
            yield gap, window
            pending.pop(0)
            window = [frame]
            if pending and pending[0].start != i:
                window = []
    if pending:
        raise MediaError(f"the clip ended before frame {pending[0].end}: it decoded to fewer frames than counted")
