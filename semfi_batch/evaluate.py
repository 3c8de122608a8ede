"""Held-out-frame evaluation: drop frames from real footage, rebuild them with each backend, compare.

For every clip (a video file, or a folder of consecutive frames):
1. shots: the clip is streamed once at a small size through PySceneDetect's AdaptiveDetector, so that no
   gap ever spans a cut;
2. gaps: inside each shot, windows of `gap_frames + 2` frames are laid end to end (`every:K`: all of them,
   frames 0, K, 2K... are kept and the K-1 between rebuilt; `gaps:N`: N consecutive frames dropped at
   positions spread evenly over the clip); `max_gaps` limits how many per clip;
3. the clip is streamed again at the evaluation size (never held whole in memory); each window's two end
   frames go to every backend, and its output is compared with the dropped originals: PSNR, SSIM (mean
   and worst frame), warp error along the original footage's motion (see semfi_batch.metrics), and
   seconds per generated frame.

Frames are made and compared as `run` makes them: an interlaced video (run/job.interlaced) is resized field by
field and its frames are made per field and woven (media/fields.py), and its motion (warp error) is measured
along each field sequence, the two fields of a frame being two moments; its rows name the field order.

Results are one row per (clip, gap, backend) in Parquet (EVAL_COLUMNS); `summarize` gives the per-backend
table that `semfi-batch eval` prints and `semfi-batch report` shows."""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from semfi_batch.atomic_write import write_atomic
from semfi_batch.backends import Backend, BackendOptions, InterpolationRequest, backend_class
from semfi_batch.errors import MediaError, SemfiError
from semfi_batch.keyframes import natural_key
from semfi_batch.manifest import KeyframePair
from semfi_batch.media.fields import interpolate_by_field, resize_interlaced, split_fields
from semfi_batch.media.frames import as_rgb8, read_image, resize
from semfi_batch.media.probe import VideoInfo, probe_stream, probe_video
from semfi_batch.media.video_frames import iter_frames
from semfi_batch.metrics import MotionField, motion_fields, psnr, ssim, warp_error
from semfi_batch.plan import default_seed
from semfi_batch.run.job import interlaced, uneven_inbetween_times

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Gaps per clip for `gaps:N` when --max-gaps is not given (`every:K` takes every window by default).
DEFAULT_MAX_GAPS = 8
# Shot detection runs on frames this wide: cuts are obvious at any size and small frames decode fast.
SHOT_WIDTH = 320
THUMB_WIDTH = 320
EVAL_META_KEY = b"semfi_batch.eval"

EVAL_SCHEMA = pa.schema(
    [
        ("clip", pa.string()),  # path as given
        ("clip_name", pa.string()),
        ("clip_kind", pa.string()),  # "video" | "frames"
        ("drop", pa.string()),
        ("gap_index", pa.int64()),
        ("pair_id", pa.string()),
        ("start_frame", pa.int64()),  # the two kept frames (0-based, decode order)
        ("end_frame", pa.int64()),
        ("gap_frames", pa.int64()),
        ("shot", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        # The field order (tt, bb, tb, bt) of a clip whose frames were made per field, as `run` notes it; null for
        # progressive clips and frame folders.
        ("fields", pa.string()),
        ("backend", pa.string()),
        ("status", pa.string()),  # "done" | "failed"
        ("error", pa.string()),
        ("psnr", pa.float64()),  # mean over the gap's frames, dB
        ("psnr_min", pa.float64()),  # worst frame of the gap
        ("ssim", pa.float64()),
        ("ssim_min", pa.float64()),
        ("warp_error", pa.float64()),  # output: start key, generated frames, end key
        ("warp_error_truth", pa.float64()),  # the same figure for the original frames
        ("wall_s", pa.float64()),
        ("s_per_frame", pa.float64()),
        # Thumbnails (JPEG) for one telling gap per clip, null elsewhere: what `report` shows side by side.
        ("thumb_start", pa.binary()),
        ("thumb_truth", pa.binary()),
        ("thumb_output", pa.binary()),
        ("thumb_end", pa.binary()),
    ]
)
EVAL_COLUMNS = tuple(EVAL_SCHEMA.names)


class EvalError(SemfiError):
    """Evaluation cannot start: bad option, unusable clip, or a backend that cannot take these frames."""

    exit_code = 2


@dataclass(frozen=True)
class DropSpec:
    """Which frames are held out: `every:K` (keep every K-th frame, rebuild the K-1 between) or
    `gaps:N` (N consecutive frames at spread-out positions)."""

    kind: str
    n: int

    @classmethod
    def parse(cls, text: str) -> DropSpec:
        """Parse "every:K" (K >= 2) or "gaps:N" (N >= 1)."""
        m = re.fullmatch(r"\s*(every|gaps):(\d+)\s*", text or "")
        if not m:
            raise EvalError(f"--drop {text!r}: expected every:K (e.g. every:2) or gaps:N (e.g. gaps:3)")
        kind, n = m.group(1), int(m.group(2))
        if kind == "every" and n < 2:
            raise EvalError(f"--drop {text!r}: every:K needs K >= 2 (every:2 drops every second frame)")
        if kind == "gaps" and n < 1:
            raise EvalError(f"--drop {text!r}: gaps:N needs N >= 1")
        return cls(kind, n)

    @property
    def gap_frames(self) -> int:
        return self.n - 1 if self.kind == "every" else self.n

    def __str__(self) -> str:
        return f"{self.kind}:{self.n}"


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


# ---------------------------------------------------------------------------------------------- clips


@dataclass
class Clip:
    """A video file or a folder of consecutive frames, read one frame at a time."""

    path: Path
    kind: str  # "video" | "frames"
    width: int
    height: int
    fps: float
    max_frames: int | None = None
    files: list[Path] = field(default_factory=list)
    video: VideoInfo | None = None  # a video's probed facts (its frame list)

    # What the clip is called in rows, pair_ids, the summary and the report: unique over one evaluation
    # (`clip_names`); open_clip gives its own name, evaluate the one that tells it apart from the others.
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or clip_names([self.path])[0]

    def replace_row(self, start: int, end: int) -> KeyframePair:
        """The manifest row `run` would be given to rebuild this video's frames strictly between `start` and
        `end`: what run's rules about a row (frame times, fields) are asked about."""
        return KeyframePair(
            row=0, pair_id="", mode="replace", gap_frames=end - start - 1, seed=0, source=self.path,
            start_frame=start, end_frame=end,
        )  # fmt: skip

    @property
    def field_order(self) -> str | None:
        """The field order (tt, bb, tb, bt) when `run` makes this clip's frames per field (run/job.interlaced, with
        no keyframe cache: eval never deinterlaces), else None."""
        if self.kind != "video" or not interlaced(self.replace_row(0, 1), None):
            return None
        return probe_stream(self.path).field_order

    def frames(self, size: tuple[int, int] | None = None, *, whole_frames: bool = False) -> Iterator[np.ndarray]:
        """Frames in order, as `run` reads them: RGB or RGBA, uint8 or uint16 (a video's upright, in
        `media.video_frames.frame_layout`; a folder's as `read_image` reads them), resized to `size` (width,
        height) when given as `run` resizes keys: field by field where it makes frames per field, unless
        `whole_frames` (shot detection, which looks at whole pictures only)."""
        if self.kind == "frames":
            return self._image_frames(size)
        fit = resize if whole_frames or self.field_order is None else resize_interlaced
        return self._video_frames(size, fit)

    def _image_frames(self, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
        for path in self.files[: self.max_frames]:
            frame = read_image(path)
            if frame.shape[:2] != (self.height, self.width):
                raise EvalError(
                    f"{path} is {frame.shape[1]}x{frame.shape[0]}, the first frame of {self.path} is "
                    f"{self.width}x{self.height}: a frame folder must hold frames of one size"
                )
            yield resize(frame, *size) if size else frame

    def _video_frames(
        self, size: tuple[int, int] | None, fit: Callable[[np.ndarray, int, int], np.ndarray]
    ) -> Iterator[np.ndarray]:
        # Frames as `run` reads them (media/video_frames): exact, upright, in the video's own layout.
        assert self.video is not None
        count = self.video.frame_count
        for _, frame in iter_frames(self.video, range(min(count, self.max_frames) if self.max_frames else count)):
            yield fit(frame, *size) if size else frame


def clip_names(paths: Sequence[Path]) -> list[str]:
    """A name for each clip, unique among `paths`: a video's stem or a folder's name, with as many of its
    parent folders before it as tell it apart from the others (a/clip and b/clip, not clip twice); then the
    file's suffix; a clip given twice is numbered (#2)."""
    resolved = [Path(p).absolute() for p in paths]
    longest = max((len(p.parts) for p in resolved), default=0)
    levels = [(depth, suffix) for suffix in (False, True) for depth in range(longest)]
    chosen: list[str | None] = [None] * len(resolved)
    for depth, suffix in levels:
        labels = [_clip_label(p, depth, suffix) for p in resolved]
        counts = {label: labels.count(label) for label in labels}
        for i, label in enumerate(labels):
            if chosen[i] is None and counts[label] == 1:
                chosen[i] = label
        if all(chosen):
            break
    given: Counter[str] = Counter()
    names = []
    for path, name in zip(resolved, chosen, strict=True):
        name = name or _clip_label(path, 0, False)  # the same clip given more than once
        given[name] += 1
        names.append(name if given[name] == 1 else f"{name} #{given[name]}")
    return names


def _clip_label(path: Path, depth: int, suffix: bool) -> str:
    folders = [part for part in path.parent.parts if part != path.anchor]
    last = path.stem if path.suffix and not suffix and not path.is_dir() else path.name
    return "/".join([*folders[len(folders) - depth :], last] if depth else [last])


def open_clip(path: Path, max_frames: int | None = None) -> Clip:
    """A Clip for a video file or a folder of frames (sorted by name, numbers in names compared as
    numbers). MediaError/VideoOpenFailure/EvalError name the file when it cannot be used."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: natural_key(p.name)
        )
        if len(files) < 3:
            raise EvalError(f"{path}: a frame folder needs at least 3 images ({', '.join(IMAGE_SUFFIXES)})")
        first = read_image(files[0])
        return Clip(path, "frames", first.shape[1], first.shape[0], 0.0, max_frames, files)
    info = probe_video(path)
    width, height = info.display_size
    return Clip(path, "video", width, height, info.avg_fps, max_frames, video=info)


def detect_cuts(clip: Clip) -> tuple[list[int], int]:
    """(frames that start a new shot, number of frames), from one pass of PySceneDetect's
    AdaptiveDetector over the clip at a small size."""
    from scenedetect import AdaptiveDetector, FrameTimecode

    w = min(SHOT_WIDTH, clip.width)
    h = max(2, round(clip.height * w / clip.width / 2) * 2)
    fps = clip.fps or 25.0
    # min_scene_len=1: a missed cut would put a gap across it, a spurious one only costs a position.
    detector = AdaptiveDetector(min_scene_len=1)
    cuts: list[int] = []
    count = 0
    for i, frame in enumerate(clip.frames((w, h), whole_frames=True)):
        bgr = np.ascontiguousarray(as_rgb8(frame)[..., ::-1])  # the detector takes 8-bit BGR only
        cuts += [tc.frame_num for tc in detector.process_frame(FrameTimecode(i, fps), bgr)]
        count = i + 1
    if count:
        cuts += [tc.frame_num for tc in detector.post_process(FrameTimecode(count - 1, fps))]
    return sorted(set(cuts)), count


# ------------------------------------------------------------------------------------------ evaluation


@dataclass
class EvalSettings:
    """What to evaluate and how. `size` (width, height) resizes every clip; `max_frames` reads only the
    first frames of each clip."""

    backends: list[str]
    drop: DropSpec
    max_gaps: int | None = None
    size: tuple[int, int] | None = None
    max_frames: int | None = None
    options: BackendOptions = field(default_factory=BackendOptions)

    def describe(self) -> dict:
        return {
            "backends": self.backends,
            "drop": str(self.drop),
            "max_gaps": self.max_gaps,
            "size": list(self.size) if self.size else None,
            "max_frames": self.max_frames,
        }


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
            gap_rows, thumbs = _evaluate_gap(
                clip, field_order, settings, backends, index, gap, window, Path(work), want
            )
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


def _evaluate_gap(
    clip: Clip,
    field_order: str | None,
    settings: EvalSettings,
    backends: dict[str, Backend],
    index: int,
    gap: Gap,
    window: list[np.ndarray],
    work: Path,
    want_thumbs: bool,
) -> tuple[list[dict], dict]:
    start, end, truth = window[0], window[-1], window[1:-1]
    by_field = field_order is not None
    motion = _original_motion(window, by_field)  # the original footage's motion, shared by every backend
    truth_warp = _warp_error_along(window, motion, by_field)
    pair_id = f"{clip.name}@{gap.start}-{gap.end}"
    base = {
        "clip": str(clip.path),
        "clip_name": clip.name,
        "clip_kind": clip.kind,
        "drop": str(settings.drop),
        "gap_index": index,
        "pair_id": pair_id,
        "start_frame": gap.start,
        "end_frame": gap.end,
        "gap_frames": gap.gap_frames,
        "shot": gap.shot,
        "width": start.shape[1],
        "height": start.shape[0],
        "fields": field_order,
        "warp_error_truth": truth_warp,
    }
    times = _held_out_times(clip, gap)
    middle = len(truth) // 2
    thumbs: dict = {}
    if want_thumbs:
        thumbs["common"] = {
            "thumb_start": _thumb(start),
            "thumb_truth": _thumb(truth[middle]),
            "thumb_end": _thumb(end),
        }
    rows = []
    for name, backend in backends.items():
        request = InterpolationRequest(
            pair_id=pair_id,
            start=start,
            end=end,
            gap_frames=gap.gap_frames,
            seed=default_seed(pair_id),
            work_dir=work / f"{name}-{index}",
            times=times,
        )
        request.work_dir.mkdir(parents=True, exist_ok=True)
        row = {**base, "backend": name, "status": "done", "error": None}
        t0 = time.perf_counter()
        try:
            out = _generate(backend, request, by_field)
        except Exception as exc:  # noqa: BLE001 - one backend failing a gap is a result, not the end
            row.update(
                status="failed", error=str(exc) if isinstance(exc, SemfiError) else f"{type(exc).__name__}: {exc}"
            )
            row["wall_s"] = time.perf_counter() - t0
            rows.append(row)
            continue
        wall = time.perf_counter() - t0
        p = [psnr(t, o) for t, o in zip(truth, out, strict=True)]
        s = [ssim(t, o) for t, o in zip(truth, out, strict=True)]
        row.update(
            psnr=float(np.mean(p)),
            psnr_min=float(np.min(p)),
            ssim=float(np.mean(s)),
            ssim_min=float(np.min(s)),
            warp_error=_warp_error_along([start, *out, end], motion, by_field),
            wall_s=wall,
            s_per_frame=wall / gap.gap_frames,
        )
        if want_thumbs:
            thumbs[name] = _thumb(out[middle])
        rows.append(row)
    return rows, thumbs


def _held_out_times(clip: Clip, gap: Gap) -> tuple[float, ...] | None:
    """Where the held-out frames fall between the gap's keys: by the video's own frame times where they are
    uneven (variable frame rate), as `run` asks a backend for a replace row over the same frames
    (run/job.uneven_inbetween_times); None (evenly) elsewhere and for frame folders."""
    if clip.kind != "video":
        return None
    return uneven_inbetween_times(clip.replace_row(gap.start, gap.end))


def _field_sequences(frames: Sequence[np.ndarray], by_field: bool) -> list[list[np.ndarray]]:
    """The sequences motion is followed along: the frames themselves, or when they are made per field the top
    fields and the bottom fields (the two fields of a frame are two moments: motion between woven frames would
    be measured on their comb)."""
    if not by_field:
        return [list(frames)]
    tops, bottoms = zip(*(split_fields(frame) for frame in frames), strict=True)
    return [list(tops), list(bottoms)]


def _original_motion(window: Sequence[np.ndarray], by_field: bool) -> list[list[MotionField]]:
    """Motion fields of the original window, one list per sequence of `_field_sequences`."""
    return [motion_fields(sequence) for sequence in _field_sequences(window, by_field)]


def _warp_error_along(frames: Sequence[np.ndarray], motion: list[list[MotionField]], by_field: bool) -> float:
    """Warp error of `frames` along the original motion: the mean over the field sequences when by field."""
    values = [warp_error(seq, m) for seq, m in zip(_field_sequences(frames, by_field), motion, strict=True)]
    values = [v for v in values if v == v]  # NaN: nothing visible in both frames of any pair of that sequence
    return float(np.mean(values)) if values else float("nan")


def _generate(backend: Backend, request: InterpolationRequest, by_field: bool) -> list[np.ndarray]:
    """The backend's frames in the keys' own layout, as `run` asks for them (`Backend.generate` gives a backend
    that sees RGB uint8 only such keys and turns its frames back): per field and woven when `by_field`, as
    run/attempt.py makes an interlaced pair's (media/fields.interpolate_by_field)."""

    def make(first: np.ndarray, last: np.ndarray, part: str) -> Iterator[np.ndarray]:
        work_dir = request.work_dir / part if request.work_dir else None
        if work_dir:
            work_dir.mkdir(parents=True, exist_ok=True)
        return backend.generate(replace(request, start=first, end=last, work_dir=work_dir))

    made = interpolate_by_field(make, request.start, request.end) if by_field else backend.generate(request)
    out = []
    for frame in made:
        if frame.shape != request.start.shape or frame.dtype != request.start.dtype:
            raise SemfiError(
                f"backend returned a frame of shape {frame.shape} {frame.dtype}, expected {request.start.shape} "
                f"{request.start.dtype}"
            )
        out.append(frame)
    if len(out) != request.gap_frames:
        raise SemfiError(f"backend returned {len(out)} frames, expected {request.gap_frames}")
    return out


def _thumb(frame: np.ndarray) -> bytes:
    frame = as_rgb8(frame)
    h, w = frame.shape[:2]
    if w > THUMB_WIDTH:
        frame = cv2.resize(frame, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise MediaError("cannot encode a thumbnail")
    return buf.tobytes()


# ------------------------------------------------------------------------------------- files, summary


def write_eval(rows: Sequence[dict], path: Path, settings: EvalSettings | None = None) -> Path:
    """Write rows to Parquet at `path` atomically, with the settings and backend parameters as metadata."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise EvalError(f"-o {path} is a folder; give a file name such as {path / 'eval.parquet'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{c: r.get(c) for c in EVAL_COLUMNS} for r in rows], schema=EVAL_SCHEMA)
    meta = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if settings is not None:
        meta.update(settings.describe())
        meta["backend_params"] = {
            n: {"version": backend_class(n).version, **backend_class(n).key_params(settings.options)}
            for n in settings.backends
        }
    table = table.replace_schema_metadata({EVAL_META_KEY: json.dumps(meta, default=str).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(path, sink.getvalue().to_pybytes())
    return path


def read_eval(path: Path) -> tuple[pd.DataFrame, dict]:
    """(rows, settings metadata) of an eval Parquet file; EvalError when it is not one."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise EvalError(f"eval file not found: {path}") from None
    except (OSError, pa.ArrowException) as exc:
        raise EvalError(f"cannot read {path} as Parquet: {exc}") from None
    missing = [c for c in ("clip_name", "backend", "status", "psnr", "ssim") if c not in table.column_names]
    if missing:
        raise EvalError(f"{path} is not a `semfi-batch eval` file: no column(s) {', '.join(missing)}")
    raw = (table.schema.metadata or {}).get(EVAL_META_KEY)
    return table.to_pandas(), json.loads(raw) if raw else {}


def is_eval_file(path: Path) -> bool:
    """True when `path` is a Parquet file with eval metadata or eval columns."""
    try:
        schema = pq.read_schema(path)
    except Exception:  # noqa: BLE001 - anything unreadable is simply not an eval file
        return False
    return EVAL_META_KEY in (schema.metadata or {}) or {"clip_name", "psnr", "ssim"} <= set(schema.names)


@dataclass(frozen=True)
class BackendSummary:
    """One backend's figures over an evaluation: means over its gaps, and its worst clip (the clip with
    the lowest mean PSNR, and its figures)."""

    backend: str
    gaps: int
    failed: int
    psnr: float
    ssim: float
    warp_error: float
    warp_error_truth: float
    s_per_frame: float
    worst_clip: str
    worst_psnr: float
    worst_ssim: float
    best: bool = False


def summarize(rows: pd.DataFrame) -> list[BackendSummary]:
    """Per-backend summary, in first-seen order; `best` marks the highest mean PSNR (SSIM breaks ties) among
    the backends that made every gap: one whose failed gaps are left out of its means is not compared."""
    out = []
    for name, group in rows.groupby("backend", sort=False):
        done = group[group["status"] == "done"]
        failed = int((group["status"] != "done").sum())
        if done.empty:
            nan = float("nan")
            out.append(BackendSummary(name, 0, failed, nan, nan, nan, nan, nan, "", nan, nan))
            continue
        per_clip = done.groupby("clip_name", sort=False)[["psnr", "ssim"]].mean()
        worst = per_clip["psnr"].idxmin()
        frames = float(done["gap_frames"].sum())
        out.append(
            BackendSummary(
                backend=str(name),
                gaps=len(done),
                failed=failed,
                psnr=float(done["psnr"].mean()),
                ssim=float(done["ssim"].mean()),
                warp_error=float(done["warp_error"].mean()),
                warp_error_truth=float(done["warp_error_truth"].mean()),
                s_per_frame=float(done["wall_s"].sum() / frames) if frames else float("nan"),
                worst_clip=str(worst),
                worst_psnr=float(per_clip.loc[worst, "psnr"]),
                worst_ssim=float(per_clip.loc[worst, "ssim"]),
            )
        )
    ranked = [s for s in out if s.gaps and not s.failed]
    if ranked:
        top = max(ranked, key=lambda s: (s.psnr, s.ssim))
        out = [BackendSummary(**{**s.__dict__, "best": s is top}) for s in out]
    return out


def format_seconds(value: float | None) -> str:
    """About three significant digits without exponents: blend takes microseconds a frame, a video model
    minutes."""
    if value is None or math.isnan(value):
        return "-"
    for limit, digits in ((10, 0), (1, 1), (0.1, 2), (0.01, 3), (0.001, 4)):
        if value >= limit:
            return f"{value:.{digits}f}"
    return f"{value:.6f}"
