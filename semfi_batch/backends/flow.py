"""`flow`: bidirectional optical-flow interpolation on the CPU (OpenCV DIS), occlusion-aware.

For each pair the two flows F01 and F10 are computed once. A frame at time t is made by backward-warping
both keyframes to t and blending them with weights that fall to zero where forward-backward consistency says
a pixel is occluded in that keyframe."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from semfi_batch.backends.base import Backend, InterpolationRequest
from semfi_batch.plan import inbetween_times

# Flow is estimated at most at this many pixels (then upsampled): DIS quality saturates well before 720p.
_FLOW_MAX_PIXELS = 640 * 360
# A pixel whose forward-backward round trip misses by more than this (in pixels, plus a relative part) is
# taken as occluded in that keyframe.
_OCC_ABS, _OCC_REL = 1.0, 0.05


class FlowBackend(Backend):
    """Optical-flow in-betweening with forward-backward occlusion handling."""

    name = "flow"
    description = "bidirectional optical flow (OpenCV DIS) with occlusion-aware blending (CPU, no weights)"
    version = "1"

    def __init__(self, options=None):
        super().__init__(options)
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    @classmethod
    def key_params(cls, options) -> dict:
        return {"preset": "medium", "max_pixels": _FLOW_MAX_PIXELS, "occ": [_OCC_ABS, _OCC_REL]}

    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        f01, f10 = self._flows(request.start, request.end)
        h, w = request.start.shape[:2]
        grid = np.mgrid[0:h, 0:w][::-1].astype(np.float32)  # (2, h, w): x, y
        v0 = _visibility(f01, f10, grid)  # pixels of frame 0 that are visible in frame 1
        v1 = _visibility(f10, f01, grid)
        a = request.start.astype(np.float32)
        b = request.end.astype(np.float32)
        for t in inbetween_times(request.gap_frames):
            # Flow from time t back to each keyframe (linear-motion approximation, Jiang et al. 2018).
            ft0 = -(1 - t) * t * f01 + t * t * f10
            ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
            w0 = (1 - t) * _warp(v0, ft0, grid)
            w1 = t * _warp(v1, ft1, grid)
            total = w0 + w1
            weak = total < 1e-3  # occluded on both sides: fall back to time weights
            w0 = np.where(weak, 1 - t, w0)
            w1 = np.where(weak, t, w1)
            total = w0 + w1
            out = (_warp(a, ft0, grid) * w0[..., None] + _warp(b, ft1, grid) * w1[..., None]) / total[..., None]
            yield np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _flows(self, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = start.shape[:2]
        scale = min(1.0, (_FLOW_MAX_PIXELS / (h * w)) ** 0.5)
        g0, g1 = (cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (start, end))
        if scale < 1.0:
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            g0, g1 = (cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (g0, g1))
        f01 = self._dis.calc(g0, g1, None)
        f10 = self._dis.calc(g1, g0, None)
        if scale < 1.0:
            sx, sy = w / g0.shape[1], h / g0.shape[0]
            f01, f10 = (_upsample(f, w, h, sx, sy) for f in (f01, f10))
        return f01, f10


def _upsample(flow: np.ndarray, w: int, h: int, sx: float, sy: float) -> np.ndarray:
    up = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    up[..., 0] *= sx
    up[..., 1] *= sy
    return up


def _warp(image: np.ndarray, flow: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Backward warp: out(x) = image(x + flow(x))."""
    map_x = grid[0] + flow[..., 0]
    map_y = grid[1] + flow[..., 1]
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _visibility(f_ab: np.ndarray, f_ba: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """1.0 where following f_ab then f_ba returns near the start (visible in both), else 0.0; soft-edged."""
    back = _warp(f_ba, f_ab, grid)
    err = np.linalg.norm(f_ab + back, axis=-1)
    mag = np.linalg.norm(f_ab, axis=-1) + np.linalg.norm(back, axis=-1)
    occluded = err > _OCC_ABS + _OCC_REL * mag
    vis = (~occluded).astype(np.float32)
    return cv2.GaussianBlur(vis, (5, 5), 0)
