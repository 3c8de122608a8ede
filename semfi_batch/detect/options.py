"""Detection options, their checks, and what detection finds (cuts, rows, one video's result)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semfi_batch.errors import SemfiError
from semfi_batch.manifest import MAX_GAP_FRAMES
from semfi_batch.media.probe import VideoInfo

MODES = ("cuts", "damage", "stride")
DETECTORS = ("adaptive", "content")
# PySceneDetect's own defaults (detect-adaptive / detect-content), so results match its CLI.
DEFAULT_THRESHOLD = {"adaptive": 3.0, "content": 27.0}
DEFAULT_MIN_SCENE_LEN = "0.6s"
# PySceneDetect's CLI analyses frames downscaled to about this width; the same keeps our cut lists equal.
DEFAULT_ANALYSIS_WIDTH = 256

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
    colour_change: float = float("nan")  # damage mode: share of pixels changing HSV class between the two frames
    colour_motion: float = float("nan")  # damage mode: the same between neighbouring frames around the cut (mean)


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
