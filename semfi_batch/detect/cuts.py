"""Hard cuts: PySceneDetect's detectors fed frame by frame, minus the steps of fades and dissolves."""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode, SceneDetector
from scenedetect.detector import FlashFilter

from semfi_batch.detect.options import Cut, DetectOptions, parse_min_scene_len

# Consecutive frames whose luma correlation is at least this are the same picture with a brightness or
# blend change (a fade or dissolve step), not two shots: hard cuts measured here are below 0.25, the steps
# of fades and dissolves in ../shared/footage above 0.98.
GRADUAL_CORRELATION = 0.9
# A hard cut changes the luma picture (mean absolute difference, 0-255, at analysis size); cuts measured here
# change it by 30 or more. Below this the detector reacted to hue noise in a dark fade.
CUT_MIN_LUMA_CHANGE = 5.0
# Share of the pixels whose colour class (HSV histogram, COLOUR_BINS per channel) changes across a cut that damage
# mode finds across left-out frames, at least: motion moves a picture without changing what it is made of (a
# shot moving on over a frozen or black frame changed 0.02-0.05 of them in films of low-contrast textures),
# a new shot changes it (0.14-0.64 for cuts there that PySceneDetect scored only 3.3-8.6 times the motion, or
# did not report). It must also be COLOUR_CUT_RATIO times what the shot's own motion changes over as many frame
# intervals (a flickering shot changes its colours every frame).
COLOUR_CUT_MIN = 0.1
COLOUR_CUT_RATIO = 3.0
COLOUR_BINS = 16

# --- cuts ---------------------------------------------------------------------------------------------


def make_detector(options: DetectOptions) -> SceneDetector:
    """The PySceneDetect detector the options name, with PySceneDetect's CLI defaults."""
    min_len = parse_min_scene_len(options.min_scene_len)
    if options.detector == "adaptive":
        return AdaptiveDetector(
            adaptive_threshold=options.effective_threshold,
            min_scene_len=min_len,
            min_content_val=options.min_content_val,
        )
    return ContentDetector(threshold=options.effective_threshold, min_scene_len=min_len)


@dataclass(frozen=True)
class _CutCandidate:
    seq: int  # decode sequence number of the first frame of the new shot
    prev_seq: int  # decode sequence number of the frame it was compared with
    score: float
    content_val: float
    correlation: float
    luma_change: float
    flatness: float
    colour_change: float
    colour_motion: float
    by_detector: bool  # the detector reported it (--min-scene-len applies to it: CutFinder.spaced)
    by_colour: bool  # damage mode: its colours change as a new shot's do across left-out frames (not spaced)


class CutFinder:
    """Feeds frames to a PySceneDetect detector and reports its cuts by decode sequence number. Frames may be
    left out (damage mode keeps damaged frames away from it).

    The detector runs with no minimum scene length, so that it reports every frame over its threshold: a cut
    that is then dropped (a fade/dissolve step) must not hide a real cut right after it, as the detector's own
    minimum would. `spaced` applies --min-scene-len afterwards, to the cuts that are kept.

    Frames are timed as PySceneDetect's CLI times them, by count at the nominal frame rate (it only matters
    for a --min-scene-len given in seconds); where each frame really is comes from the probe afterwards."""

    def __init__(self, options: DetectOptions, fps: float):
        self.options = options
        self._fps = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self.detector = make_detector(replace(options, min_scene_len=0))
        self._fed: list[int] = []
        self._score = array("d")
        # The detector reports a cut up to event_buffer_length frames late; the frames on both sides of it
        # are still here then, to measure whether it is a fade/dissolve step.
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=self.detector.event_buffer_length + 4)
        self._cut_stats: dict[int, tuple[float, float, float]] = {}
        self._last_tc: FrameTimecode | None = None
        # Damage mode leaves frames out, and judges a cut across them by its colours too (stands_out): the
        # colour change from each fed frame to the next, and the pair statistics of each pair across left-out
        # frames (a cut there may be one the detector scored too low to report).
        self._colour_step = array("d") if options.mode == "damage" else None
        self._last_histogram: np.ndarray | None = None
        self._across_stats: dict[int, tuple[float, float, float]] = {}

    def feed(self, seq: int, frame: np.ndarray) -> None:
        """Give the detector frame `seq` of the decode order (BGR at analysis size)."""
        tc = FrameTimecode(seq, fps=self._fps)
        self._last_tc = tc
        self._recent.append((seq, frame))
        found = self.detector.process_frame(tc, frame)
        # PySceneDetect keeps the latest frame score on the detector (scenedetect==0.7.2, pinned).
        self._score.append(float(getattr(self.detector, "_frame_score", None) or 0.0))
        self._fed.append(seq)
        if self._colour_step is not None:
            # The detector has just split this frame into HSV planes (scenedetect==0.7.2); reuse them.
            planes = getattr(self.detector, "_last_frame", None)
            hsv = (planes.hue, planes.sat, planes.lum) if planes is not None else cv2.split(_hsv(frame))
            histogram = colour_histogram(*hsv)
            last = self._last_histogram
            self._colour_step.append(colour_change(last, histogram) if last is not None else 0.0)
            self._last_histogram = histogram
            if len(self._fed) >= 2 and seq - self._fed[-2] > 1:
                self._across_stats[seq] = cut_pair_stats(self._recent[-2][1], frame)
        for c in found:
            self._note_cut(c.frame_num)

    def _note_cut(self, seq: int) -> None:
        frames = [f for s, f in self._recent]
        seqs = [s for s, _ in self._recent]
        if seq in seqs and seqs.index(seq) > 0:
            k = seqs.index(seq)
            self._cut_stats[seq] = cut_pair_stats(frames[k - 1], frames[k])
        else:
            self._cut_stats[seq] = (np.nan, np.nan, np.nan)

    def finish(self) -> list[_CutCandidate]:
        """Every frame the detector found over its threshold (no minimum scene length yet: `spaced`), and in
        damage mode every cut across left-out frames found by its colours, in order."""
        if self._last_tc is not None:
            for c in self.detector.post_process(self._last_tc):
                self._note_cut(c.frame_num)
        detected = set(self._cut_stats)
        by_colour = set()
        position = {seq: k for k, seq in enumerate(self._fed)}
        for seq, stats in self._across_stats.items():
            k = position[seq]
            motion = _neighbour_mean(self._colour_step, k, _COLOUR_WINDOW)
            if colour_cut(self._colour_step[k], motion, seq - self._fed[k - 1]):
                by_colour.add(seq)
                self._cut_stats.setdefault(seq, stats)
        out = []
        for seq in sorted(self._cut_stats):
            k = position[seq]
            prev = self._fed[k - 1] if k > 0 else seq
            colour = (np.nan, np.nan)
            if self._colour_step is not None:
                colour = (self._colour_step[k], _neighbour_mean(self._colour_step, k, _COLOUR_WINDOW))
            score = self._decision_score(k)
            out.append(
                _CutCandidate(
                    seq, prev, score, self._score[k], *self._cut_stats[seq], *colour, seq in detected, seq in by_colour
                )
            )
        return out

    def spaced(self, seqs: Iterable[int]) -> set[int]:
        """Of the detector's cuts at decode sequence numbers `seqs` (those kept of finish()'s), the ones
        --min-scene-len leaves, by the detector's own rule as if it had reported only these: AdaptiveDetector
        drops a cut closer than the minimum to the last cut it took (or to the first frame); ContentDetector's
        FlashFilter merges such a run of cuts into its last one. Given every cut the detector reported
        (by_detector), this is the list it makes itself with that minimum (scenedetect==0.7.2, pinned)."""
        kept = set(seqs)
        min_len = parse_min_scene_len(self.options.min_scene_len)
        if not kept or not self._fed:
            return kept
        out: set[int] = set()
        if self.options.detector == "adaptive":
            last_cut = FrameTimecode(self._fed[0], fps=self._fps)
            for seq in sorted(kept):
                tc = FrameTimecode(seq, fps=self._fps)
                if (tc - last_cut) >= min_len:
                    last_cut = tc
                    out.add(seq)
            return out
        # The merge decides on frames over the threshold and on the frames between: replay all frames fed.
        flash_filter = FlashFilter(mode=FlashFilter.Mode.MERGE, length=min_len)
        for seq in self._fed:
            found = flash_filter.filter(timecode=FrameTimecode(seq, fps=self._fps), above_threshold=seq in kept)
            out.update(tc.frame_num for tc in found)
        return out

    def _decision_score(self, k: int) -> float:
        if self.options.detector == "content":
            return self._score[k]
        # AdaptiveDetector's ratio: the frame's score over the mean of its window_width neighbours each side.
        mean = _neighbour_mean(self._score, k, self.detector.window_width)
        return min(self._score[k] / mean, 255.0) if mean > 1e-5 else 255.0


# Fed frames each side whose colour changes tell how much the shot's own motion changes its colours.
_COLOUR_WINDOW = 2


def _neighbour_mean(values: array, k: int, width: int) -> float:
    """Mean of the `width` values each side of values[k] (not k itself); 0 when there are none."""
    around = list(values[max(0, k - width) : k]) + list(values[k + 1 : k + 1 + width])
    return sum(around) / len(around) if around else 0.0


def _hsv(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)


def colour_histogram(hue: np.ndarray, sat: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The share of a frame's pixels in each of COLOUR_BINS hue, then saturation, then value classes, from its
    8-bit HSV planes (OpenCV's: hue 0-179)."""
    counts = [cv2.calcHist([plane], [0], None, [COLOUR_BINS], [0, top]) for plane, top in
              ((hue, 180), (sat, 256), (value, 256))]  # fmt: skip
    return np.concatenate(counts).ravel() / hue.size


def colour_change(before: np.ndarray, after: np.ndarray) -> float:
    """Share of the pixels that changed colour class between two colour_histograms (0-1, mean over H, S, V)."""
    return cv2.norm(before, after, cv2.NORM_L1) / 6


def colour_cut(change: float, motion: float, span: int) -> bool:
    """Whether two frames `span` intervals apart changed colours as a cut does: `change` (colour_change between
    them) is at least COLOUR_CUT_MIN and COLOUR_CUT_RATIO times `motion` (the shot's own colour change per
    interval) over the span. Motion moves a picture; only a new one changes what it is made of."""
    return change >= max(COLOUR_CUT_MIN, COLOUR_CUT_RATIO * span * motion)


def cut_pair_stats(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float]:
    """(luma correlation, mean absolute luma change 0-255, smaller luma deviation) of two BGR frames either side
    of a cut."""
    a = cv2.cvtColor(before, cv2.COLOR_BGR2GRAY).astype(np.float32)
    b = cv2.cvtColor(after, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return _correlation(a, b), float(np.abs(a - b).mean()), float(min(a.std(), b.std()))


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two gray frames; flat frames have no structure to correlate."""
    sa, sb = float(a.std()), float(b.std())
    if sa < 1.0 or sb < 1.0:
        return 1.0 if sa < 1.0 and sb < 1.0 else 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def is_gradual(cut: Cut, options: DetectOptions) -> bool:
    """A detector cut that is a step of a fade or dissolve rather than a cut from shot to shot: the two frames
    are the same picture, their luma barely differs (the detector reacted to hue noise in a dark fade), or one
    of them is black/blank (a fade or dip through black meets the next shot there)."""
    return (
        cut.correlation >= GRADUAL_CORRELATION
        or cut.luma_change < CUT_MIN_LUMA_CHANGE
        or cut.flatness <= options.blank_std
    )


def stands_out(cut: Cut, options: DetectOptions) -> bool:
    """Whether a cut found across left-out damaged frames is more than the shot's motion over that time.

    The detector compares the good frames on both sides as if they were neighbours, but motion adds up over
    the frames in between (after a freeze the picture jumps by all the motion it missed), so AdaptiveDetector's
    ratio is taken per frame interval; ContentDetector's fixed threshold is left as it is. A low-contrast cut
    scores too little for that (8.6 across two black frames: 2.9 per interval), while its colours change as no
    motion changes them: such a cut stands out by its colours (colour_cut). Missing a cut here would bridge a
    damage row from one shot into the next."""
    if cut.span <= 1 or options.detector == "content":
        return True
    if cut.score / cut.span >= options.effective_threshold:
        return True
    return colour_cut(cut.colour_change, cut.colour_motion, cut.span)
