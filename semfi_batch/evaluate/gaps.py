"""Gaps: the windows of frames held out inside each shot of a clip, never across a cut."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from semfi_batch.evaluate.settings import DropSpec

# Gaps per clip for `gaps:N` when --max-gaps is not given (`every:K` takes every window by default).
DEFAULT_MAX_GAPS = 8


@dataclass(frozen=True)
class Gap:
    """Frames strictly between the kept frames `start` and `end` are held out; `shot` numbers the shot."""

    start: int
    end: int
    shot: int

    @property
    def gap_frames(self) -> int:
        return self.end - self.start - 1


def shots_from_cuts(frame_count: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """[first, last] frame ranges of the shots, given the frames at which new shots start."""
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < frame_count), frame_count]
    return [(a, b - 1) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def plan_gaps(frame_count: int, cuts: Sequence[int], drop: DropSpec, max_gaps: int | None = None) -> list[Gap]:
    """Gaps for a clip of `frame_count` frames with shot cuts at `cuts`: windows of gap_frames + 2 frames
    laid end to end inside each shot (never across a cut), then at most `max_gaps` of them, evenly
    spread over the clip (None: every window for every:K, DEFAULT_MAX_GAPS for gaps:N; 0: all)."""
    step = drop.gap_frames + 1
    windows = [
        Gap(a, a + step, shot)
        for shot, (first, last) in enumerate(shots_from_cuts(frame_count, cuts))
        for a in range(first, last - step + 1, step)
    ]
    if max_gaps is None:
        max_gaps = 0 if drop.kind == "every" else DEFAULT_MAX_GAPS
    if max_gaps <= 0 or len(windows) <= max_gaps:
        return windows
    picks = np.linspace(0, len(windows) - 1, max_gaps)
    return [windows[i] for i in sorted({int(round(p)) for p in picks})]
