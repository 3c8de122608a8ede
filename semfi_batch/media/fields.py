"""Interlaced frames as two fields: generated frames are made per field, so no combing is interpolated.

An interlaced frame holds two half-height pictures taken half a frame apart: the top field (even rows) and
the bottom field (odd rows); with top field first (tt/tb) the top one is the earlier. Interpolating whole
frames would treat the comb teeth between the fields as texture and move them. Instead each keyframe is
split into its fields, the top fields of the two keys are interpolated with each other and the bottom fields
with each other, and the results are woven back. Each field sequence is evenly spaced in time (top fields at
frame k, bottom fields at k + 1/2 for TFF, k - 1/2 for BFF), so the in-between fields of each sequence sit at
the same fractions of the gap, which is each field's own time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from semfi_batch.media.frames import scaled


def split_fields(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top field, bottom field): the even and the odd rows, each a half-height image."""
    return np.ascontiguousarray(frame[0::2]), np.ascontiguousarray(frame[1::2])


def weave(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """The frame whose even rows are `top` and odd rows `bottom` (inverse of `split_fields`)."""
    out = np.empty((top.shape[0] + bottom.shape[0], *top.shape[1:]), dtype=top.dtype)
    out[0::2], out[1::2] = top, bottom
    return out


def resize_interlaced(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an interlaced frame field by field (a whole-frame filter would mix the two moments)."""
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    top, bottom = split_fields(frame)
    heights = (height + 1) // 2, height // 2
    shrink = width * height < frame.shape[0] * frame.shape[1]
    method = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return weave(*(scaled(f, width, h, method) for f, h in zip((top, bottom), heights)))


def interpolate_by_field(
    generate: Callable[[np.ndarray, np.ndarray, str], Iterable[np.ndarray]],
    start: np.ndarray,
    end: np.ndarray,
) -> Iterator[np.ndarray]:
    """Frames between two interlaced keyframes, made per field: `generate(start_field, end_field, name)`
    (name "top" or "bottom") yields the in-between fields of one field sequence; they are woven in order."""
    start_top, start_bottom = split_fields(start)
    end_top, end_bottom = split_fields(end)
    tops = list(generate(start_top, end_top, "top"))
    bottoms = generate(start_bottom, end_bottom, "bottom")
    count = 0
    for bottom in bottoms:
        if count >= len(tops):
            raise ValueError(f"the bottom field sequence has more frames than the top's ({len(tops)})")
        yield weave(tops[count], bottom)
        count += 1
    if count != len(tops):
        raise ValueError(f"the field sequences differ in length: {len(tops)} top, {count} bottom")
