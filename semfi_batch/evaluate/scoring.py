"""One gap scored: each backend's frames made from the gap's two keys as `run` makes them (per field for an
interlaced clip), compared with the held-out originals (PSNR, SSIM, warp error along the original motion,
seconds per frame), and thumbnails for the report."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from semfi_batch.backends import Backend, InterpolationRequest
from semfi_batch.errors import MediaError, SemfiError
from semfi_batch.evaluate.clips import Clip
from semfi_batch.evaluate.gaps import Gap
from semfi_batch.evaluate.settings import EvalSettings
from semfi_batch.media.fields import interpolate_by_field, split_fields
from semfi_batch.media.frames import as_rgb8
from semfi_batch.metrics import MotionField, motion_fields, psnr, ssim, warp_error
from semfi_batch.plan import default_seed
from semfi_batch.run.job import uneven_inbetween_times

THUMB_WIDTH = 320


def evaluate_gap(
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
