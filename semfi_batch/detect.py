"""Footage -> manifest rows: hard cuts, damaged stretches and keyframe strides.

Every video is decoded once, streaming, at a small analysis size through an ffmpeg pipe, while `probe_video`
lists its frames. Indices are positions in that list (`frame_times`, presentation order), so the index a row
names is the frame `media.frames.extract_frame` returns for it, also for odd and variable frame rates: when
ffmpeg decodes exactly the frames the probe lists, the k-th decoded frame is index k; when it does not (a
frame fails to decode), the video is decoded again with ffmpeg reporting every frame's presentation time,
and each frame is placed by that time. Indices are never computed from a time and an assumed rate. Cuts come
from PySceneDetect's detectors fed frame by frame; damage is judged from a few numbers per frame kept for
the whole video (never the frames themselves).

Row semantics (manifest schema v1):
- cuts: one `insert` row per hard cut, keyframes = last frame of the shot before and first frame of the shot
  after, `gap_frames` = the transition length to generate.
- damage: one `replace` row per damaged stretch, keyframes = last good frame before and first good frame
  after. A hole in the timestamps (frames missing from the file) has nothing to replace, so it is an `insert`
  row between its two neighbours whose `gap_frames` is the number of missing frames. Where a hole touches
  damaged frames the merged row is an `insert` row spanning them: its `gap_frames` counts the damaged frames
  plus the missing ones (every frame strictly between the keyframes is regenerated, at the right times).
- stride: inside each shot, keyframes every K frames and a `replace` row for the K-1 frames between them.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode, SceneDetector

from semfi_batch.errors import MediaError, OutputPathError, SemfiError
from semfi_batch.manifest import MAX_GAP_FRAMES, SCHEMA, write_manifest
from semfi_batch.media.probe import VideoInfo, probe_video
from semfi_batch.media.tools import tool_path

MODES = ("cuts", "damage", "stride")
DETECTORS = ("adaptive", "content")
# PySceneDetect's own defaults (detect-adaptive / detect-content), so results match its CLI.
DEFAULT_THRESHOLD = {"adaptive": 3.0, "content": 27.0}
DEFAULT_MIN_SCENE_LEN = "0.6s"
# PySceneDetect's CLI analyses frames downscaled to about this width; the same keeps our cut lists equal.
DEFAULT_ANALYSIS_WIDTH = 256

# Consecutive frames whose luma correlation is at least this are the same picture with a brightness or
# blend change (a fade or dissolve step), not two shots: hard cuts measured here are below 0.25, the steps
# of fades and dissolves in ../shared/footage above 0.98.
GRADUAL_CORRELATION = 0.9
# A hard cut changes the luma picture (mean absolute difference, 0-255, at analysis size); cuts measured here
# change it by 30 or more. Below this the detector reacted to hue noise in a dark fade.
CUT_MIN_LUMA_CHANGE = 5.0
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
FREEZE_CONTEXT = 3
FREEZE_CONTRAST = 4.0
FREEZE_NOISE_FLOOR = 0.05
# Frames that repeat their predecessor this closely are kept from the cut detector (a fixed figure, so that
# --freeze-threshold, which only says what counts as damage, never changes the cuts found).
REPEAT_WITHHOLD = 0.5
# A flash frame differs from both neighbours, which are alike: their difference is at most this share of the
# smaller jump.
FLASH_RETURN = 0.25
# A timestamp interval this many times the local frame duration (median over HOLE_WINDOW intervals each side)
# is a hole.
HOLE_RATIO = 1.5
HOLE_WINDOW = 12

ProgressFn = Callable[[int, int], None]


class DetectOptionsError(SemfiError):
    """Detection options that do not fit together or are out of range."""

    exit_code = 2


@dataclass(frozen=True)
class DetectOptions:
    """What to detect and how. Thresholds are in the units PySceneDetect's CLI uses."""

    mode: str = "cuts"
    detector: str = "adaptive"
    threshold: float | None = None  # adaptive: ratio (3.0); content: content_val (27.0)
    min_content_val: float = 15.0  # adaptive only
    min_scene_len: int | str = DEFAULT_MIN_SCENE_LEN  # frames (int) or seconds ("0.6s")
    keep_gradual: bool = False  # keep detector cuts that are fade/dissolve steps
    transition_frames: int = 11  # cuts: frames to generate per cut (11 + 2 keys = 13 = 4k+1)
    every: int | None = None  # stride: keyframe spacing K
    max_gap: int = 24  # damage: longest row (frames to generate)
    blank_std: float = 3.0  # damage: luma std at or below which a frame is blank
    freeze_threshold: float = 0.5  # damage: luma change at or below which a frame repeats its predecessor
    flash_threshold: float = 20.0  # damage: luma jump into and out of a flash frame
    timestamp_gaps: bool = True  # damage: report holes in the timestamps
    analysis_width: int = DEFAULT_ANALYSIS_WIDTH  # 0: full resolution

    @property
    def effective_threshold(self) -> float:
        return self.threshold if self.threshold is not None else DEFAULT_THRESHOLD[self.detector]

    def check(self) -> None:
        """Raise DetectOptionsError naming the first option that is out of range."""
        if self.mode not in MODES:
            raise DetectOptionsError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.detector not in DETECTORS:
            raise DetectOptionsError(f"--detector must be one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if self.threshold is not None and not self.threshold > 0:
            raise DetectOptionsError(f"--threshold must be > 0, got {self.threshold}")
        if self.mode == "stride":
            if self.every is None:
                raise DetectOptionsError("--mode stride needs --every K (keyframe spacing, >= 2)")
            if not 2 <= self.every <= MAX_GAP_FRAMES + 1:
                raise DetectOptionsError(f"--every must be between 2 and {MAX_GAP_FRAMES + 1}, got {self.every}")
        elif self.every is not None:
            raise DetectOptionsError("--every only applies to --mode stride")
        if not 1 <= self.transition_frames <= MAX_GAP_FRAMES:
            raise DetectOptionsError(
                f"--transition-frames must be between 1 and {MAX_GAP_FRAMES}, got {self.transition_frames}"
            )
        if not 1 <= self.max_gap <= MAX_GAP_FRAMES:
            raise DetectOptionsError(f"--max-gap must be between 1 and {MAX_GAP_FRAMES}, got {self.max_gap}")
        if self.analysis_width != 0 and self.analysis_width < 16:
            raise DetectOptionsError(f"--analysis-width must be 0 (full size) or >= 16, got {self.analysis_width}")
        for name in ("blank_std", "freeze_threshold", "flash_threshold", "min_content_val"):
            if getattr(self, name) < 0:
                raise DetectOptionsError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        parse_min_scene_len(self.min_scene_len)


def parse_min_scene_len(value: int | str) -> int | str:
    """`--min-scene-len` as PySceneDetect takes it: whole frames ("15", 15) or seconds ("0.6s", "0.6")."""
    if isinstance(value, int):
        if value < 0:
            raise DetectOptionsError(f"--min-scene-len must be >= 0, got {value}")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    number = text[:-1] if text.endswith("s") else text
    try:
        seconds = float(number)
    except ValueError:
        raise DetectOptionsError(f"--min-scene-len must be frames (15) or seconds (0.6s), got {value!r}") from None
    if not seconds >= 0:
        raise DetectOptionsError(f"--min-scene-len must be >= 0, got {value!r}")
    return f"{seconds}s"


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """A hard cut: `index` is the first frame of the new shot."""

    index: int
    score: float  # what the detector compared with its threshold (adaptive ratio or content_val)
    content_val: float  # PySceneDetect's frame score (HSV difference) between the two frames
    correlation: float  # luma correlation of the two frames (near 1: same picture, a fade/dissolve step)
    luma_change: float  # mean absolute luma difference of the two frames (0-255)
    flatness: float  # luma standard deviation of the flatter frame (near 0: a black or blank frame)
    span: int = 1  # frame intervals between the two frames (more than 1 where damaged frames were left out)


@dataclass(frozen=True)
class DetectedRow:
    """One manifest row found in a video, before it gets a pair_id and a source path."""

    start_frame: int
    end_frame: int
    mode: str
    gap_frames: int
    reason: str
    score: float | None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class VideoDetection:
    """Everything found in one video."""

    path: Path
    info: VideoInfo
    mode: str
    rows: list[DetectedRow]
    cuts: list[Cut]
    gradual: list[Cut]  # detector cuts rejected as fade/dissolve steps
    notes: list[str]
    frames_decoded: int
    seconds: float

    @property
    def fps(self) -> float:
        """Frames analysed per second of wall time (probe and decode included)."""
        return self.frames_decoded / self.seconds if self.seconds > 0 else 0.0


# --- decoding -----------------------------------------------------------------------------------------


_CONFIG_RE = re.compile(r"config in time_base: (\d+)/(\d+)")
_FRAME_RE = re.compile(r"\bn:\s*\d+\s+pts:\s*(\S+)")
_OUTPUT_RE = re.compile(r"^\s*Stream #0:0.*Video: rawvideo.*?, (\d+)x(\d+)(?:.*?, ([\d.]+)(k?) fps)?")
_END = object()


class AnalysisFrames:
    """A video's frames as ffmpeg decodes them (presentation order) at analysis size: (time, BGR uint8).

    ffmpeg decodes, scales and pipes raw frames; the frame size is read from its log, so nothing about the
    video needs to be known before decoding starts and the probe can run alongside. With `timestamps`, its
    showinfo filter also reports each frame's presentation time (relative to the container start, as
    `probe_video`'s frame_times), which places frames exactly even when some fail to decode; that logging
    costs about a third more decoding work, so without it the times are None (frames in order)."""

    def __init__(self, path: Path, analysis_width: int, *, sampling: str = "area", timestamps: bool = False):
        self.path = Path(path)
        self.analysis_width = analysis_width
        self.sampling = sampling
        self.timestamps = timestamps
        self._proc: subprocess.Popen | None = None
        self._items: queue.Queue = queue.Queue()
        self._log: deque[str] = deque(maxlen=20)
        self._reader: threading.Thread | None = None
        self.frame_rate = 0.0  # the nominal rate ffmpeg reports (known once the first frame is out)

    def __enter__(self) -> AnalysisFrames:
        if self._proc is not None:
            return self  # already started (see open_frames)
        aw = self.analysis_width
        scale = f"scale=w='if(gt(iw,{aw}),{aw},iw)':h=-1:flags={self.sampling}" if aw > 0 else "null"
        graph = f"{scale},format=bgr24" + (",showinfo=checksum=0" if self.timestamps else "")
        cmd = [
            tool_path("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
            # Deblocking only smooths block edges that the downscale averages away anyway; skipping it
            # saves 5-30% of the decoding (the cut lists of the benchmark clips stay the same).
            "-skip_loop_filter", "all", "-noautorotate", "-i", str(self.path),
            "-map", "0:v:0", "-an", "-sn", "-dn", "-fps_mode", "passthrough", "-enc_time_base", "-1",
            "-vf", graph, "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop ffmpeg (if still running) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        proc.stderr.close()

    def _read_log(self) -> None:
        # Items: ("size", w, h) once, when ffmpeg describes its output; then with timestamps one
        # ("time", seconds) per frame. showinfo logs a frame before the frame reaches the pipe; its integer pts
        # in the filter's time base is exact, where pts_time is printed to 6 significant digits only.
        time_base: Fraction | None = None
        output = False
        assert self._proc is not None
        for raw in self._proc.stderr:
            line = raw.decode("utf-8", "replace")
            if self.timestamps and "showinfo" in line:
                if (m := _CONFIG_RE.search(line)) is not None:
                    time_base = Fraction(int(m.group(1)), int(m.group(2)))
                elif (m := _FRAME_RE.search(line)) is not None:
                    pts = m.group(1)
                    known = time_base is not None and pts.lstrip("-").isdigit()
                    self._items.put(("time", float(int(pts) * time_base) if known else None))
                continue
            if line.startswith("Output #0"):
                output = True
            elif output and (m := _OUTPUT_RE.match(line)) is not None:
                if m.group(3):
                    self.frame_rate = float(m.group(3)) * (1000 if m.group(4) else 1)
                self._items.put(("size", int(m.group(1)), int(m.group(2))))
                output = False
            elif line.strip() and not line.startswith(" "):
                self._log.append(line.strip())
        self._items.put(_END)

    def __iter__(self) -> Iterator[tuple[float | None, np.ndarray]]:
        assert self._proc is not None, "use AnalysisFrames as a context manager"
        proc = self._proc
        size: tuple[int, int] | None = None
        stamps: deque[float | None] = deque()
        while True:
            if size is None or (self.timestamps and not stamps):
                item = self._items.get()
                if item is _END:
                    break
                if item[0] == "size":
                    size = item[1], item[2]
                else:
                    stamps.append(item[1])
                continue
            width, height = size
            data = proc.stdout.read(width * height * 3)
            if len(data) < width * height * 3:
                break
            yield (
                (stamps.popleft() if self.timestamps else None),
                np.frombuffer(data, np.uint8).reshape(height, width, 3),
            )
        if proc.wait() != 0:
            detail = self._log[-1] if self._log else f"ffmpeg exited with status {proc.returncode}"
            raise MediaError(f"cannot decode {self.path}: {detail}")


def place_frames(times: Sequence[float | None], info: VideoInfo) -> np.ndarray:
    """Index in `info.frame_times` of each decoded frame, matched by timestamp; -1 for a frame that repeats an
    earlier one's time. A frame without a reported time takes the next index. MediaError if a decoded time
    is not among the probed ones."""
    ft = info.frame_times
    steps = np.diff(ft)
    steps = steps[steps > 0]
    tolerance = max(1e-4, 0.25 * float(steps.min())) if steps.size else 1e-3
    out = np.full(len(times), -1, dtype=np.int64)
    last = -1
    for k, stamp in enumerate(times):
        if stamp is None:
            index = last + 1
        else:
            j = int(np.searchsorted(ft, stamp))
            near = [i for i in (j - 1, j) if 0 <= i < ft.shape[0]]
            index = min(near, key=lambda i: abs(ft[i] - stamp))
            if abs(ft[index] - stamp) > tolerance:
                raise MediaError(
                    f"cannot place a decoded frame of {info.path}: its time {stamp:.6f}s is not among the "
                    "probed frame times"
                )
        if last < index < ft.shape[0]:
            out[k] = last = index
    return out


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two gray frames (0-255)."""
    return cv2.norm(a, b, cv2.NORM_L1) / a.size


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


class CutFinder:
    """Feeds frames to a PySceneDetect detector and reports its cuts by decode sequence number. Frames may be
    left out (damage mode keeps damaged frames away from it).

    Frames are timed as PySceneDetect's CLI times them, by count at the nominal frame rate (it only matters
    for a --min-scene-len given in seconds); where each frame really is comes from the probe afterwards."""

    def __init__(self, options: DetectOptions, fps: float):
        self.options = options
        self._fps = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self.detector = make_detector(options)
        self._fed: list[int] = []
        self._score = array("d")
        # The detector reports a cut up to event_buffer_length frames late; the frames on both sides of it
        # are still here then, to measure whether it is a fade/dissolve step.
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=self.detector.event_buffer_length + 4)
        self._cut_stats: dict[int, tuple[float, float, float]] = {}
        self._last_tc: FrameTimecode | None = None

    def feed(self, seq: int, frame: np.ndarray) -> None:
        """Give the detector frame `seq` of the decode order (BGR at analysis size)."""
        tc = FrameTimecode(seq, fps=self._fps)
        self._last_tc = tc
        self._recent.append((seq, frame))
        found = self.detector.process_frame(tc, frame)
        # PySceneDetect keeps the latest frame score on the detector (scenedetect==0.7.2, pinned).
        self._score.append(float(getattr(self.detector, "_frame_score", None) or 0.0))
        self._fed.append(seq)
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
        """Every cut the detector reported, in order."""
        if self._last_tc is not None:
            for c in self.detector.post_process(self._last_tc):
                self._note_cut(c.frame_num)
        position = {seq: k for k, seq in enumerate(self._fed)}
        out = []
        for seq in sorted(self._cut_stats):
            k = position[seq]
            prev = self._fed[k - 1] if k > 0 else seq
            out.append(_CutCandidate(seq, prev, self._decision_score(k), self._score[k], *self._cut_stats[seq]))
        return out

    def _decision_score(self, k: int) -> float:
        if self.options.detector == "content":
            return self._score[k]
        # AdaptiveDetector's ratio: the frame's score over the mean of its window_width neighbours each side.
        w = self.detector.window_width
        around = list(self._score[max(0, k - w) : k]) + list(self._score[k + 1 : k + 1 + w])
        mean = sum(around) / len(around) if around else 0.0
        return min(self._score[k] / mean, 255.0) if mean > 1e-5 else 255.0


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
    the frames in between (after a freeze the picture jumps by all the motion it missed). AdaptiveDetector's
    ratio is therefore taken per frame interval; ContentDetector's fixed threshold is left as it is."""
    if cut.span <= 1 or options.detector == "content":
        return True
    return cut.score / cut.span >= options.effective_threshold


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
        self.step.append(_mad(gray, recent[-1]) if recent else np.nan)
        self.skip.append(_mad(gray, recent[0]) if len(recent) == 2 else np.nan)
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
        for a, b in _runs(repeat):
            if a <= FREEZE_CONTEXT or b + 1 >= n:
                continue
            context = step[a - FREEZE_CONTEXT : a]
            if np.isnan(context).any() or np.isnan(step[b + 1]):
                continue
            peak = float(np.max(step[a : b + 1]))
            # The way out of a freeze catches up the motion it held, so it is judged like the steps before.
            local = min(float(context.min()), float(step[b + 1]))
            moving = local >= max(FREEZE_NOISE_FLOOR, FREEZE_CONTRAST * peak)
            steady = context.max() < o.flash_threshold  # a cut or flash just before is no motion to judge by
            if moving and steady and not reason[a : b + 1].any():
                reason[a : b + 1], score[a : b + 1] = "freeze", peak

        reason[~decoded] = "undecodable"
        return reason, score


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
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(dt, HOLE_WINDOW, mode="edge"), 2 * HOLE_WINDOW + 1)
    local = np.median(windows, axis=1)
    holes = []
    for j in np.flatnonzero(dt > HOLE_RATIO * local):
        ratio = float(dt[j] / local[j])
        holes.append((int(j) + 1, max(1, round(ratio) - 1), ratio))
    return holes


def _frames_between(s: int, e: int) -> str:
    if e - s > 2:
        return f"frames {s + 1}-{e - 1}"
    return f"frame {s + 1}" if e - s == 2 else f"between frames {s} and {e}"


def _damage_rows(
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
    cut_at = [c.index for c in cuts]
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
        if any(s < c <= e for c in cut_at):
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


# --- rows per mode ------------------------------------------------------------------------------------


def _cut_rows(cuts: list[Cut], decoded: np.ndarray, options: DetectOptions) -> list[DetectedRow]:
    rows = []
    for cut in cuts:
        before = np.flatnonzero(decoded[: cut.index])
        if before.size:
            extras = {"content_val": cut.content_val}
            rows.append(
                DetectedRow(int(before[-1]), cut.index, "insert", options.transition_frames, "cut", cut.score, extras)
            )
    return rows


def _stride_rows(cuts: list[Cut], decoded: np.ndarray, every: int) -> tuple[list[DetectedRow], list[str]]:
    n = decoded.shape[0]
    starts = [0] + [c.index for c in cuts]
    ends = [c.index - 1 for c in cuts] + [n - 1]
    rows, notes = [], []
    for shot, (first, last) in enumerate(zip(starts, ends, strict=True)):
        for s in range(first, last - every + 1, every):
            e = s + every
            if not (decoded[s] and decoded[e]):
                notes.append(f"stride keyframe {s if not decoded[s] else e} did not decode: row {s}-{e} skipped")
                continue
            rows.append(DetectedRow(s, e, "replace", every - 1, "stride", None, {"shot": shot}))
    return rows, notes


# --- one video, many videos ---------------------------------------------------------------------------


def detect_video(
    path: Path,
    options: DetectOptions,
    progress: ProgressFn | None = None,
    *,
    probing: Future | None = None,
    frames: AnalysisFrames | None = None,
) -> VideoDetection:
    """Scan one video and return the rows its mode asks for. `progress(done, total)` is called as frames
    decode. `probing` (a probe_video(path) under way) and `frames` (its `open_frames` decoder, started) may
    be given by a caller that set them going early. Raises VideoOpenFailure/MediaError for videos that
    cannot be read."""
    options.check()
    path = Path(path)
    started = time.perf_counter()
    notes: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The probe (the exact frame list every index refers to) runs while ffmpeg already decodes.
        probing = probing or pool.submit(probe_video, path)
        try:
            scan = _scan(frames or open_frames(path, options), options, probing, progress)
        except MediaError:
            probing.result()  # a probe failure says most clearly what is wrong with the file
            raise
    info = probing.result()
    n = info.frame_count
    if scan.count == n:
        placed = np.arange(n)  # every probed frame decoded, in presentation order
    else:
        # Some frames failed to decode (or the decoder made extra ones): only their timestamps can tell
        # which, so decode again with ffmpeg reporting every frame's time.
        notes.append(f"{scan.count} of {n} probed frames decoded in order; placed them by their timestamps")
        scan = _scan(open_frames(path, options, timestamps=True), options, probing, progress)
        placed = place_frames(scan.stamps, info)
    decoded = np.zeros(n, dtype=bool)
    decoded[placed[placed >= 0]] = True
    if not decoded.any():
        raise MediaError(f"cannot decode any frame of {info.path}")
    finder, scanner = scan.finder, scan.scanner
    cuts, gradual = [], []
    for c in finder.finish():
        if placed[c.seq] < 0:
            continue
        span = max(1, int(placed[c.seq] - placed[c.prev_seq])) if placed[c.prev_seq] >= 0 else 1
        cut = Cut(int(placed[c.seq]), c.score, c.content_val, c.correlation, c.luma_change, c.flatness, span)
        if options.mode == "damage" and not stands_out(cut, options):
            continue
        (gradual if is_gradual(cut, options) and not options.keep_gradual else cuts).append(cut)
    if options.mode == "cuts":
        rows = _cut_rows(cuts, decoded, options)
    elif options.mode == "stride":
        rows, more = _stride_rows(cuts, decoded, int(options.every or 0))
        notes += more
    else:
        assert scanner is not None
        reason, score = scanner.judge(placed, n)
        rows, more = _damage_rows(reason, score, info.frame_times, cuts, options)
        notes += more
    if gradual and options.mode != "damage":
        at = ", ".join(str(c.index) for c in gradual)
        notes.append(f"fade/dissolve steps not taken for cuts at frames {at} (--keep-gradual keeps them)")
    if (placed < 0).any():
        notes.append(f"{int((placed < 0).sum())} decoded frames repeated an earlier timestamp and were ignored")
    ft = info.frame_times
    rows = [
        DetectedRow(
            r.start_frame, r.end_frame, r.mode, r.gap_frames, r.reason, r.score,
            {"start_time": float(ft[r.start_frame]), "end_time": float(ft[r.end_frame]), **r.extras},
        )
        for r in rows
    ]  # fmt: skip
    if progress is not None:
        progress(n, n)
    return VideoDetection(
        path=info.path,
        info=info,
        mode=options.mode,
        rows=rows,
        cuts=cuts,
        gradual=gradual,
        notes=notes,
        frames_decoded=scan.count,
        seconds=time.perf_counter() - started,
    )


@dataclass
class _Scan:
    finder: CutFinder
    scanner: DamageScanner | None
    stamps: list[float | None]
    count: int


def open_frames(path: Path, options: DetectOptions, *, timestamps: bool = False) -> AnalysisFrames:
    """Start ffmpeg decoding `path` as the options' mode analyses it (returns the entered AnalysisFrames)."""
    # Cut detection samples pixels as PySceneDetect's CLI does (its linear downscale by a whole factor picks
    # one pixel per block); damage judgement averages them, which is steadier for small changes.
    sampling = "area" if options.mode == "damage" else "neighbor"
    return AnalysisFrames(path, options.analysis_width, sampling=sampling, timestamps=timestamps).__enter__()


def _scan(frames: AnalysisFrames, options: DetectOptions, probing: Future, progress: ProgressFn | None) -> _Scan:
    """Decode once, feeding every frame to the cut finder (or to the damage scanner, which passes the good ones
    on); closes `frames`. Frame times ffmpeg reports (with `timestamps`) are kept for placing the frames."""
    stamps: list[float | None] = []
    finder: CutFinder | None = None
    scanner: DamageScanner | None = None
    total = 0
    try:
        for seq, (stamp, frame) in enumerate(frames):
            if finder is None:
                finder = CutFinder(options, frames.frame_rate)
                scanner = DamageScanner(options, finder) if options.mode == "damage" else None
            stamps.append(stamp)
            if scanner is None:
                finder.feed(seq, frame)
            else:
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                mean, std = cv2.meanStdDev(gray)
                scanner.add(seq, frame, gray, float(mean[0, 0]), float(std[0, 0]))
            if progress is not None and seq % 16 == 15:
                if not total and probing.done() and probing.exception() is None:
                    total = probing.result().frame_count
                progress(seq + 1, total)
    finally:
        frames.close()
    if finder is None:
        raise MediaError(f"cannot decode any frame of {frames.path}")
    if scanner is not None:
        scanner.finish()
    return _Scan(finder, scanner, stamps, len(stamps))


@dataclass(frozen=True)
class DetectFailure:
    """A video that could not be scanned, and why."""

    path: Path
    error: SemfiError


@dataclass
class DetectRun:
    """The outcome of scanning several videos."""

    detections: list[VideoDetection]
    failures: list[DetectFailure]

    @property
    def row_count(self) -> int:
        return sum(len(d.rows) for d in self.detections)


def detect_videos(
    paths: Sequence[Path],
    options: DetectOptions,
    *,
    progress_for: Callable[[Path], ProgressFn | None] | None = None,
    on_result: Callable[[VideoDetection | DetectFailure], None] | None = None,
) -> DetectRun:
    """Scan each video in turn; a video that cannot be read becomes a DetectFailure and the others go on.
    The next videos are probed, and the next one's ffmpeg started, while the current one decodes: their
    start-up time (a good part of a short clip's) overlaps with work."""
    options.check()
    run = DetectRun([], [])
    paths = [Path(p) for p in paths]
    upcoming: AnalysisFrames | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            probes = [pool.submit(probe_video, p) for p in paths[:PROBE_AHEAD]]
            upcoming = _try_open(paths[0], options) if paths else None
            for i, path in enumerate(paths):
                frames, upcoming = upcoming, None
                if i + PROBE_AHEAD < len(paths):
                    probes.append(pool.submit(probe_video, paths[i + PROBE_AHEAD]))
                if i + 1 < len(paths):
                    upcoming = _try_open(paths[i + 1], options)
                progress = progress_for(path) if progress_for is not None else None
                try:
                    result: VideoDetection | DetectFailure = detect_video(
                        path, options, progress, probing=probes[i], frames=frames
                    )
                    run.detections.append(result)
                except SemfiError as exc:
                    result = DetectFailure(path, exc)
                    run.failures.append(result)
                finally:
                    if frames is not None:
                        frames.close()
                if on_result is not None:
                    on_result(result)
        finally:
            if upcoming is not None:
                upcoming.close()
    return run


# Videos probed ahead of the one being decoded: short clips decode faster than ffprobe starts twice.
PROBE_AHEAD = 3


def _try_open(path: Path, options: DetectOptions) -> AnalysisFrames | None:
    try:
        return open_frames(path, options)
    except SemfiError:
        return None  # detect_video opens it again and reports the error in its turn


# --- manifest -----------------------------------------------------------------------------------------

_ID_KIND = {"cuts": "cut", "damage": "damage", "stride": "stride"}
_EXTRA_TYPES = {
    "reason": pa.string(),
    "score": pa.float64(),
    "start_time": pa.float64(),
    "end_time": pa.float64(),
    "content_val": pa.float64(),
    "damaged_frames": pa.int64(),
    "missing_frames": pa.int64(),
    "shot": pa.int64(),
}
_MODE_EXTRAS = {
    "cuts": ("content_val",),
    "damage": ("damaged_frames", "missing_frames"),
    "stride": ("shot",),
}


def safe_stem(name: str) -> str:
    """A pair_id-safe version of a file stem."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).replace("..", "_")
    stem = re.sub(r"^[^A-Za-z0-9]+", "", stem)[:80]
    return stem or "video"


def manifest_table(detections: Sequence[VideoDetection], manifest_path: Path, mode: str) -> pa.Table:
    """Schema-v1 table of all rows (sources relative to the manifest's folder); valid even when empty."""
    base = Path(manifest_path).parent.resolve()  # the probe resolves video paths the same way
    columns = ["pair_id", "source", "start_frame", "end_frame", "mode", "gap_frames"]
    extras = ["reason", "score", "start_time", "end_time", *_MODE_EXTRAS[mode]]
    data: dict[str, list[Any]] = {name: [] for name in columns + extras}
    used: set[str] = set()
    for det in detections:
        stem = safe_stem(det.path.stem)
        unique, k = stem, 2
        while unique in used:
            unique, k = f"{stem}-{k}", k + 1
        used.add(unique)
        source = os.path.relpath(det.path, base)
        for row in det.rows:
            values = {
                "pair_id": f"{unique}-{_ID_KIND[mode]}-{row.start_frame:06d}",
                "source": source,
                "start_frame": row.start_frame,
                "end_frame": row.end_frame,
                "mode": row.mode,
                "gap_frames": row.gap_frames,
                "reason": row.reason,
                "score": row.score,
                **row.extras,
            }
            for name in data:
                data[name].append(values.get(name))
    fields = [pa.field(name, SCHEMA.field(name).type) for name in columns]
    fields += [pa.field(name, _EXTRA_TYPES[name]) for name in extras]
    schema = pa.schema(fields)
    return pa.Table.from_arrays([pa.array(data[f.name], type=f.type) for f in schema], schema=schema)


def write_detection_manifest(detections: Sequence[VideoDetection], manifest_path: Path, mode: str) -> Path:
    """Write the rows of `detections` as a schema-v1 manifest at `manifest_path` (atomically)."""
    manifest_path = Path(manifest_path)
    if manifest_path.is_dir():
        raise OutputPathError(f"manifest path {manifest_path} is a folder; give a file name such as cuts.parquet")
    return write_manifest(manifest_table(detections, manifest_path, mode), manifest_path)
