"""Quality figures for generated frames: PSNR and SSIM against originals (scikit-image), and temporal
consistency as a flow-warp error between consecutive frames.

Warp error (after Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018): for consecutive
frames (prev, cur), the motion from cur back to prev is estimated, prev is warped onto cur along it, and
the mean absolute difference to cur is taken over pixels that are visible in both (a forward-backward
consistency check, Sundaram et al. 2010, masks occlusions). Units are 8-bit levels (0..255); lower is
steadier. The motion can come from other frames than the ones compared: held-out evaluation estimates it
on the original footage and applies it to every backend's output, so all backends are judged against the
same, true motion and a ghosting cross-fade cannot look steady by explaining its own ghosts.

Motion is estimated with OpenCV's Farneback method, deliberately not DIS (which the `flow` backend uses),
so the figure does not favour one backend's own motion model.

Every figure is taken on the frames' colour (RGB) at their own depth: frames may be RGB or RGBA, uint8 or
uint16 (as `run` reads them), and alpha is left out (an opaque alpha channel would count as perfectly
rebuilt pixels and raise every score). PSNR and SSIM take the depth's full range (255 or 65535), so their
figures mean the same at either depth; warp error is given in 8-bit levels at both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# scikit-image gives inf for identical frames, which no mean survives; identical frames count as 100 dB.
PSNR_CAP_DB = 100.0
# Warp error is measured on frames shrunk to at most this many pixels: motion estimation at full HD costs
# far more and changes the figure little.
WARP_MAX_PIXELS = 640 * 360
# Sundaram et al.'s occlusion test: |w + w'|^2 > a (|w|^2 + |w'|^2) + b marks a pixel occluded.
_OCC_A, _OCC_B = 0.01, 0.5
_FARNEBACK = {
    "pyr_scale": 0.5,
    "levels": 5,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of a frame's colour against the original's (scikit-image, over the RGB channels, data range
    of the frames' depth), capped at PSNR_CAP_DB for identical colour."""
    _check_pair(reference, test)
    reference, test = colour(reference), colour(test)
    if np.array_equal(reference, test):
        return PSNR_CAP_DB
    from skimage.metrics import peak_signal_noise_ratio  # scipy underneath: imported when used

    value = float(peak_signal_noise_ratio(reference, test, data_range=data_range(reference)))
    return min(value, PSNR_CAP_DB)


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean SSIM of a frame's colour against the original's (scikit-image defaults: 7x7 uniform window,
    computed per RGB channel and averaged, data range of the frames' depth)."""
    _check_pair(reference, test)
    from skimage.metrics import structural_similarity

    reference, test = colour(reference), colour(test)
    return float(structural_similarity(reference, test, channel_axis=-1, data_range=data_range(reference)))


def colour(frame: np.ndarray) -> np.ndarray:
    """The RGB channels of an RGB or RGBA frame, at its own depth (what every figure here is taken on)."""
    return frame[..., :3]


def data_range(frame: np.ndarray) -> int:
    """The full range of a frame's levels: 255 for uint8, 65535 for uint16."""
    if frame.dtype == np.uint8:
        return 255
    if frame.dtype == np.uint16:
        return 65535
    raise ValueError(f"frames are uint8 or uint16, not {frame.dtype}")


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    if reference.shape != test.shape:
        raise ValueError(f"frames differ in shape: {reference.shape} vs {test.shape}")
    if reference.dtype != test.dtype:
        raise ValueError(f"frames differ in depth: {reference.dtype} vs {test.dtype}")


def _levels8(frame: np.ndarray) -> np.ndarray:
    """A frame's colour as float32 in 8-bit levels (0..255 at either depth): the unit of warp error."""
    return colour(frame).astype(np.float32) * np.float32(255.0 / data_range(frame))


@dataclass(frozen=True)
class MotionField:
    """Motion from a frame back to its predecessor at analysis size, and where it can be trusted.

    `flow[y, x]` is the displacement such that cur(x, y) ~ prev((x, y) + flow[y, x]); `valid` is False
    where the pixel is occluded in prev or maps outside it."""

    flow: np.ndarray  # (h, w, 2) float32
    valid: np.ndarray  # (h, w) bool

    @property
    def size(self) -> tuple[int, int]:
        return self.flow.shape[1], self.flow.shape[0]


def analysis_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) at which warp error is measured: the frame size, shrunk to WARP_MAX_PIXELS."""
    scale = min(1.0, (WARP_MAX_PIXELS / float(width * height)) ** 0.5)
    return max(16, round(width * scale)), max(16, round(height * scale))


def _shrink(frame: np.ndarray) -> np.ndarray:
    w, h = analysis_size(frame.shape[1], frame.shape[0])
    if (w, h) == (frame.shape[1], frame.shape[0]):
        return frame
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


def _shrunk_colour(frame: np.ndarray) -> np.ndarray:
    return _shrink(np.ascontiguousarray(colour(frame)))


def _gray(frame: np.ndarray) -> np.ndarray:
    rgb = _shrunk_colour(frame)
    if rgb.dtype != np.uint8:  # Farneback takes 8-bit gray; motion is found as well at 8 bits as at 16
        rgb = np.clip(_levels8(rgb) + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def _warp(image: np.ndarray, flow: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def motion_field(prev: np.ndarray, cur: np.ndarray) -> MotionField:
    """Estimate the motion from `cur` back to `prev` (frames of one layout) with its occlusion mask."""
    _check_pair(prev, cur)
    g_prev, g_cur = _gray(prev), _gray(cur)
    back = cv2.calcOpticalFlowFarneback(g_cur, g_prev, None, **_FARNEBACK)  # cur -> prev
    fwd = cv2.calcOpticalFlowFarneback(g_prev, g_cur, None, **_FARNEBACK)  # prev -> cur
    h, w = g_cur.shape
    xs, ys = _grid(w, h)
    fwd_at = _warp(fwd, back, xs, ys)  # forward flow sampled where each cur pixel lands in prev
    round_trip = np.sum((back + fwd_at) ** 2, axis=-1)
    bound = _OCC_A * (np.sum(back**2, axis=-1) + np.sum(fwd_at**2, axis=-1)) + _OCC_B
    tx, ty = xs + back[..., 0], ys + back[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return MotionField(flow=back, valid=(round_trip <= bound) & inside)


def motion_fields(frames: Sequence[np.ndarray]) -> list[MotionField]:
    """Motion fields between each consecutive pair of `frames` (len(frames) - 1 of them)."""
    return [motion_field(a, b) for a, b in zip(frames[:-1], frames[1:], strict=False)]


def pair_warp_error(prev: np.ndarray, cur: np.ndarray, field: MotionField) -> float:
    """Mean absolute difference of colour (in 8-bit levels, 0..255) between `cur` and `prev` warped along
    `field`, over the pixels the field marks valid; NaN when none is."""
    _check_pair(prev, cur)
    a, b = _levels8(_shrunk_colour(prev)), _levels8(_shrunk_colour(cur))
    if (b.shape[1], b.shape[0]) != field.size:
        raise ValueError(f"motion field is {field.size}, frames give {(b.shape[1], b.shape[0])}")
    if not field.valid.any():
        return float("nan")
    xs, ys = _grid(*field.size)
    diff = np.abs(b - _warp(a, field.flow, xs, ys)).mean(axis=-1)
    return float(diff[field.valid].mean())


def warp_error(frames: Sequence[np.ndarray], fields: Sequence[MotionField] | None = None) -> float:
    """Temporal consistency of a frame sequence: mean warp error over its consecutive pairs.

    `fields` (one per consecutive pair) default to motion estimated on `frames` themselves; pass the
    fields of the original footage to judge generated frames against the true motion."""
    if len(frames) < 2:
        raise ValueError("warp error needs at least two frames")
    fields = motion_fields(frames) if fields is None else fields
    if len(fields) != len(frames) - 1:
        raise ValueError(f"{len(frames)} frames need {len(frames) - 1} motion fields, got {len(fields)}")
    values = [pair_warp_error(a, b, f) for a, b, f in zip(frames[:-1], frames[1:], fields, strict=True)]
    values = [v for v in values if v == v]  # NaN: nothing visible in both frames of that pair
    return float(np.mean(values)) if values else float("nan")


# Run jobs have no originals: their warp error uses the frames' own motion, on frames this wide (enough to
# see a jump or flicker, and cheap enough to measure every job).
JOB_QUALITY_WIDTH = 320


def job_warp_error(start: np.ndarray, frames: Sequence[np.ndarray], end: np.ndarray) -> float:
    """Temporal consistency of one job's output: warp error over start key, generated frames and end key,
    with motion estimated on those frames, at JOB_QUALITY_WIDTH. A jump at a key or flicker raises it."""
    return warp_error([_to_width(f, JOB_QUALITY_WIDTH) for f in (start, *frames, end)])


def _to_width(frame: np.ndarray, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if w <= width:
        return frame
    return cv2.resize(frame, (width, max(16, round(h * width / w))), interpolation=cv2.INTER_AREA)
