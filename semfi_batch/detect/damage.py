"""Damage: black/blank stretches, flashes, freezes and holes in the timestamps, judged from a few numbers per
frame."""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Sequence

import numpy as np

from semfi_batch.detect.cuts import CutFinder
from semfi_batch.detect.decoding import mean_abs_difference
from semfi_batch.detect.options import Cut, DetectedRow, DetectOptions

# Damage judgement (luma 0-255 at analysis size). A blank/black stretch is damage only when it starts and ends
# abruptly: the jump into it is at least ABRUPT_MIN and ABRUPT_RATIO times the motion just before (a fade to
# black moves in small, similar steps and is content).
ABRUPT_MIN = 8.0
ABRUPT_RATIO = 3.0
BLACK_LUMA = 32.0
# A near-identical run is a freeze only against the shot's own motion: the steps around it (FREEZE_CONTEXT
# before, and the one out of it) each move FREEZE_CONTRAST times more than the run's largest step, however
# slow the shot (a slow pan moving 0.3 a step still shows a frozen frame as a step of ~0). Below
# FREEZE_NOISE_FLOOR a step is no motion at all (a still shot, an animation hold: repeats there are content).
# Real footage that settles into stillness slows step by step; this keeps those out.
# The steps judged by pass over the other repeats of a regular pattern (a frame repeated every 2nd, 3rd or
# 5th, as pulldown or dropped-frame capture leaves it): near-identical runs that are themselves FREEZE_CONTRAST
# times smaller than the steps beside them, looking at most FREEZE_LOOKBACK steps away. Small steps that are
# the shot's own motion (a slow pan, a settling shot) are not passed over, so they still count against it.
# Where the video (or the measured stretch) begins sooner, steps after the way out make up the
# FREEZE_CONTEXT; at least one must come before.
FREEZE_CONTEXT = 3
FREEZE_LOOKBACK = 3 * FREEZE_CONTEXT
FREEZE_CONTRAST = 4.0
FREEZE_NOISE_FLOOR = 0.05
# Frames that repeat their predecessor this closely are kept from the cut detector (a fixed figure, so that
# --freeze-threshold, which only says what counts as damage, never changes the cuts found).
REPEAT_WITHHOLD = 0.5
# A flash frame differs from both neighbours, which are alike: their difference is at most this share of the
# smaller jump.
FLASH_RETURN = 0.25
# A timestamp interval this many times the local frame duration (median over HOLE_WINDOW intervals each side,
# fewer near the start and end) is a hole.
HOLE_RATIO = 1.5
HOLE_WINDOW = 12


# --- damage -------------------------------------------------------------------------------------------


class DamageScanner:
    """Per-frame luma numbers for judging damage, computed while streaming (the frames themselves are not
    kept). Frames that may be damage (blank, repeating their predecessor, or a flash) are kept away from the
    cut detector, so a cut is only ever seen between good frames; the flash test needs the next frame, so
    frames reach the detector one frame late."""

    def __init__(self, options: DetectOptions, finder: CutFinder):
        self.options, self.finder = options, finder
        self.mean, self.std = array("d"), array("d")
        self.step, self.skip = array("d"), array("d")  # change from the frame 1 / 2 before (NaN at the start)
        self._recent: deque[np.ndarray] = deque(maxlen=2)
        self._pending: tuple[int, np.ndarray, np.ndarray] | None = None

    def add(self, seq: int, frame: np.ndarray, gray: np.ndarray, mean: float, std: float) -> None:
        """Take the next decoded frame (BGR and gray at analysis size, seq counting from 0)."""
        self.mean.append(mean)
        self.std.append(std)
        recent = list(self._recent)
        self.step.append(mean_abs_difference(gray, recent[-1]) if recent else np.nan)
        self.skip.append(mean_abs_difference(gray, recent[0]) if len(recent) == 2 else np.nan)
        self._recent.append(gray)
        if self._pending is not None:
            self._release(*self._pending)
        self._pending = (seq, frame, gray)

    def finish(self) -> None:
        """Release the last frame to the cut detector."""
        if self._pending is not None:
            self._release(*self._pending)
            self._pending = None

    def _release(self, seq: int, frame: np.ndarray, gray: np.ndarray) -> None:
        o = self.options
        std, step = self.std[seq], self.step[seq]
        if std <= o.blank_std or step <= REPEAT_WITHHOLD:
            return
        nxt = seq + 1
        if (
            seq > 0
            and nxt < len(self.step)
            and _flash(self.std[seq - 1 : nxt + 1], step, self.step[nxt], self.skip[nxt], o)
        ):
            return
        self.finder.feed(seq, frame)

    def judge(self, placed: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Per probed frame (n of them; `placed` maps decode order to index): the damage reason ("" for good
        frames) and its score."""
        o = self.options
        mean, std, step, skip = (np.full(n, np.nan) for _ in range(4))
        seqs = np.flatnonzero(placed >= 0)
        idx = placed[seqs]
        mean[idx] = np.frombuffer(self.mean, dtype=np.float64)[seqs]
        std[idx] = np.frombuffer(self.std, dtype=np.float64)[seqs]
        # A change counts only between frames that are neighbours in the video, not merely in decode order.
        prev1 = np.where(seqs >= 1, placed[np.maximum(seqs - 1, 0)], -9)
        prev2 = np.where(seqs >= 2, placed[np.maximum(seqs - 2, 0)], -9)
        step[idx] = np.where(prev1 == idx - 1, np.frombuffer(self.step, dtype=np.float64)[seqs], np.nan)
        skip[idx] = np.where(
            (prev1 == idx - 1) & (prev2 == idx - 2), np.frombuffer(self.skip, dtype=np.float64)[seqs], np.nan
        )
        decoded = np.zeros(n, dtype=bool)
        decoded[idx] = True
        reason = np.full(n, "", dtype=object)
        score = np.full(n, np.nan)

        def motion(i: int) -> float:
            return float(np.nan_to_num(step[i])) if 0 <= i < n else 0.0

        blank = decoded & (std <= o.blank_std)
        for a, b in _runs(blank):
            if a == 0 or b == n - 1 or np.isnan(step[a]) or np.isnan(step[b + 1]):
                continue  # no good frame on one side: nothing to bridge, and no way to tell a fade
            into, out = step[a], step[b + 1]
            if (
                min(into, out) >= ABRUPT_MIN
                and into >= ABRUPT_RATIO * motion(a - 1)
                and (out >= ABRUPT_RATIO * motion(b + 2))
            ):
                reason[a : b + 1] = "black" if np.max(mean[a : b + 1]) <= BLACK_LUMA else "blank"
                score[a : b + 1] = np.max(std[a : b + 1])

        if n >= 3:  # the flash test of _flash, for every frame at once (NaN compares false)
            into, out, across = step[1:-1], step[2:], skip[2:]
            flat = np.fmin(np.fmin(std[:-2], std[1:-1]), std[2:]) <= o.blank_std
            with np.errstate(invalid="ignore"):
                jump = (into >= o.flash_threshold) & (out >= o.flash_threshold)
                flash = jump & (across <= FLASH_RETURN * np.minimum(into, out)) & ~flat & ~np.isnan(std[1:-1])
            flash &= reason[1:-1] == ""
            reason[1:-1][flash] = "flash"
            score[1:-1][flash] = into[flash]

        prev_blank = np.concatenate([[True], blank[:-1]])
        repeat = decoded & ~blank & ~prev_blank & (np.nan_to_num(step, nan=np.inf) <= o.freeze_threshold)
        repeat_runs = _runs(repeat)
        isolated = np.zeros(n, dtype=bool)  # steps of near-identical runs standing out from the steps beside
        for a, b in repeat_runs:
            sides = [step[i] for i in (a - 1, b + 1) if 0 <= i < n and not np.isnan(step[i])]
            if sides:  # (a side not measured, as at the start, is left out)
                isolated[a : b + 1] = min(sides) >= FREEZE_CONTRAST * float(np.max(step[a : b + 1]))
        for a, b in repeat_runs:
            if b + 1 >= n or np.isnan(step[b + 1]):
                continue
            context = _moving_context(step, isolated, a, b)
            if context is None:
                continue
            peak = float(np.max(step[a : b + 1]))
            # The way out of a freeze catches up the motion it held, so it is judged like the steps before.
            local = min(float(context.min()), float(step[b + 1]))
            moving = local >= max(FREEZE_NOISE_FLOOR, FREEZE_CONTRAST * peak)
            steady = context.max() < o.flash_threshold  # a cut or flash among them is no motion to judge by
            if moving and steady and not reason[a : b + 1].any():
                reason[a : b + 1], score[a : b + 1] = "freeze", peak

        reason[~decoded] = "undecodable"
        return reason, score


def _moving_context(step: np.ndarray, isolated: np.ndarray, a: int, b: int) -> np.ndarray | None:
    """The FREEZE_CONTEXT steps nearest before the near-identical run a..b that are not other isolated repeats
    (its way out, b + 1, is judged on its own), made up from those after the way out where fewer come before;
    None when there are not enough, or none before. A step not measured (NaN: the start, a frame missing in
    decode order) ends the search that way."""

    def moving(indices: range) -> list[int]:
        found = []
        for i in indices:
            if np.isnan(step[i]):
                break
            if not isolated[i]:
                found.append(i)
                if len(found) == FREEZE_CONTEXT:
                    break
        return found

    n = step.shape[0]
    before = moving(range(a - 1, max(a - 1 - FREEZE_LOOKBACK, -1), -1))
    if not before:
        return None
    after = moving(range(b + 2, min(b + 2 + FREEZE_LOOKBACK, n))) if len(before) < FREEZE_CONTEXT else []
    chosen = before + after[: FREEZE_CONTEXT - len(before)]
    return step[chosen] if len(chosen) == FREEZE_CONTEXT else None


def _flash(stds: Sequence[float], into: float, out: float, across: float, o: DetectOptions) -> bool:
    """A frame that jumps away from its predecessor while its successor jumps back to where it was.
    `stds` are the three frames' luma deviations; blank frames are judged as blank stretches instead."""
    if len(stds) < 3 or np.isnan([into, out, across, *stds]).any() or min(stds) <= o.blank_std:
        return False
    return into >= o.flash_threshold and out >= o.flash_threshold and across <= FLASH_RETURN * min(into, out)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True values."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def timestamp_holes(times: np.ndarray) -> list[tuple[int, int, float]]:
    """Holes in the presentation timestamps: (k, missing, ratio) where frames are missing between k-1 and k.
    The expected frame duration is the local median, so variable frame rate footage is judged locally."""
    if times.shape[0] < 3:
        return []
    dt = np.diff(times)
    # The window holds only real intervals, fewer at the ends: padding with copies of the first or last one let
    # that single interval set the median there (in jittery footage a short last interval made ordinary ones
    # before it look like holes).
    padded = np.pad(dt, HOLE_WINDOW, constant_values=np.nan)
    local = np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, 2 * HOLE_WINDOW + 1), axis=1)
    holes = []
    for j in np.flatnonzero(dt > HOLE_RATIO * local):
        ratio = float(dt[j] / local[j])
        holes.append((int(j) + 1, max(1, round(ratio) - 1), ratio))
    return holes


def _frames_between(s: int, e: int) -> str:
    if e - s > 2:
        return f"frames {s + 1}-{e - 1}"
    return f"frame {s + 1}" if e - s == 2 else f"between frames {s} and {e}"


def damage_rows(
    reason: np.ndarray, score: np.ndarray, times: np.ndarray, cuts: list[Cut], options: DetectOptions
) -> tuple[list[DetectedRow], list[str]]:
    n = reason.shape[0]
    holes = timestamp_holes(times) if options.timestamp_gaps else []
    # Each item covers a span of frame boundaries (boundary k lies between frames k-1 and k); items whose
    # spans touch are one stretch, bridged from the frame before its first boundary to the frame at its last.
    items = [(a, b + 1) for a, b in _runs(reason != "")] + [(k, k) for k, _, _ in holes]
    items.sort()
    hole_at = {k: (missing, ratio) for k, missing, ratio in holes}
    groups: list[list[int]] = []
    for first, last in items:
        if groups and first <= groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], last)
        else:
            groups.append([first, last])
    # Keys come from one shot: a row bridges only between frames with the same number of cuts at or before
    # them (a stretch with a cut among its boundaries has its keys in two shots and is skipped).
    shot_of = np.searchsorted(np.sort([c.index for c in cuts]), np.arange(n), side="right")
    rows, notes = [], []
    for first, last in groups:
        s, e = first - 1, last
        missing = sum(hole_at[k][0] for k in range(first, last + 1) if k in hole_at)
        parts: list[tuple[str, float]] = []
        for k in range(first, last + 1):
            if k in hole_at:
                parts.append(("timestamp_gap", hole_at[k][1]))
            if k < last and reason[k]:
                parts.append((str(reason[k]), float(score[k])))
        label = "+".join(dict.fromkeys(name for name, _ in parts))
        where = _frames_between(s, e)
        if s < 0 or e > n - 1:
            notes.append(f"{label} at {where} touches the start or end of the video: no good frame to bridge from")
            continue
        if shot_of[s] != shot_of[e]:
            notes.append(f"{label} at {where} spans a cut: not bridged")
            continue
        gap = (e - s - 1) + missing
        if gap > options.max_gap:
            notes.append(f"{label} at {where} needs {gap} frames, more than --max-gap {options.max_gap}: skipped")
            continue
        first_score = parts[0][1]
        rows.append(
            DetectedRow(
                start_frame=s,
                end_frame=e,
                mode="insert" if missing else "replace",
                gap_frames=gap,
                reason=label,
                score=None if np.isnan(first_score) else first_score,
                extras={"damaged_frames": e - s - 1, "missing_frames": missing},
            )
        )
    return rows, notes
