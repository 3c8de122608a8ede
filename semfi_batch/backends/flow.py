"""`flow`: bidirectional optical-flow interpolation on the CPU (OpenCV DIS), occlusion-aware.

For each pair the two flows F01 and F10 are computed once. A frame at time t is made by backward-warping
both keyframes to t and blending them with weights that fall to zero where forward-backward consistency says
a pixel is occluded in that keyframe."""

from __future__ import annotations

import functools
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

    scales_with_workers = True

    name = "flow"
    description = "bidirectional optical flow (OpenCV DIS) with occlusion-aware blending (CPU, no weights)"
    version = "1"
    deep_frames = True  # uint16 and RGBA frames are warped as they are; alpha moves with the colour

    def __init__(self, options=None):
        super().__init__(options)
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    @classmethod
    def deciding_files(cls, options) -> list:
        return []  # no model: the code and the command line decide all

    @classmethod
    def key_params(cls, options) -> dict:
        return {"preset": "medium", "max_pixels": _FLOW_MAX_PIXELS, "occ": [_OCC_ABS, _OCC_REL]}

    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        h, w = request.start.shape[:2]
        g0, g1, scale = _flow_inputs(request.start, request.end)
        # Flows, occlusion and blend weights are worked out at flow resolution; only the final warps of the
        # keyframes run at full resolution.
        f01 = self._dis.calc(g0, g1, None)
        f10 = self._dis.calc(g1, g0, None)
        fh, fw = g0.shape
        grid = _grid(fh, fw)
        v0 = _visibility(f01, f10, grid)  # pixels of frame 0 that are visible in frame 1
        v1 = _visibility(f10, f01, grid)
        full_grid = _grid(h, w) if scale < 1.0 else grid
        a = request.start
        b = request.end
        for t in inbetween_times(request.gap_frames):
            # Flow from time t back to each keyframe (linear-motion approximation, Jiang et al. 2018).
            ft0 = -(1 - t) * t * f01 + t * t * f10
            ft1 = (1 - t) * (1 - t) * f01 - t * (1 - t) * f10
            w0 = (1 - t) * _warp(v0, ft0, grid)
            w1 = t * _warp(v1, ft1, grid)
            weak = (w0 + w1) < 1e-3  # occluded on both sides: fall back to time weights
            w0[weak], w1[weak] = 1 - t, t
            alpha = w0 / (w0 + w1)
            if scale < 1.0:
                ft0, ft1 = (_upsample(f, w, h) for f in (ft0, ft1))
                alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
            yield _blend(_warp(a, ft0, full_grid), _warp(b, ft1, full_grid), alpha)


def _blend(a: np.ndarray, b: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """alpha * a + (1 - alpha) * b per pixel, in the frames' own dtype (blendLinear takes 8-bit and float only)."""
    if a.dtype == np.uint8:
        return cv2.blendLinear(a, b, alpha, 1.0 - alpha)
    w = alpha[..., None]
    out = w * a.astype(np.float32) + (1.0 - w) * b.astype(np.float32)
    return np.clip(out + 0.5, 0, np.iinfo(a.dtype).max).astype(a.dtype)


def _flow_inputs(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Grayscale keyframes at flow resolution, and the scale factor applied."""
    h, w = start.shape[:2]
    scale = min(1.0, (_FLOW_MAX_PIXELS / (h * w)) ** 0.5)
    code = cv2.COLOR_RGBA2GRAY if start.shape[2] == 4 else cv2.COLOR_RGB2GRAY
    g0, g1 = (cv2.cvtColor(im, code) for im in (start, end))
    if g0.dtype != np.uint8:  # DIS estimates on 8-bit gray; the warps below use the frames at full depth
        g0, g1 = ((g.astype(np.float32) / 257.0 + 0.5).astype(np.uint8) for g in (g0, g1))
    if scale < 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        g0, g1 = (cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (g0, g1))
    return g0, g1, scale


@functools.lru_cache(maxsize=4)
def _grid(h: int, w: int) -> np.ndarray:
    """(2, h, w) pixel coordinates x, y; made once per size (a batch's frames share it), read-only."""
    grid = np.mgrid[0:h, 0:w][::-1].astype(np.float32)
    grid.flags.writeable = False
    return grid


def _upsample(flow: np.ndarray, w: int, h: int) -> np.ndarray:
    sx, sy = w / flow.shape[1], h / flow.shape[0]
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
    err = cv2.magnitude(f_ab[..., 0] + back[..., 0], f_ab[..., 1] + back[..., 1])
    mag = cv2.magnitude(f_ab[..., 0], f_ab[..., 1]) + cv2.magnitude(back[..., 0], back[..., 1])
    vis = (err <= _OCC_ABS + _OCC_REL * mag).astype(np.float32)
    return cv2.GaussianBlur(vis, (5, 5), 0)
