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

# Flow is estimated at most at this many pixels (then upsampled). DIS's quality saturates well below 720p:
# on 24 real and photo-motion sources at 360p-720p, flow at 480x270 rebuilt dropped frames as well as at
# 640x360 (mean PSNR +0.01 dB at gap 1, +0.09 dB at gap 3; bench/flow_resolution.py) at 0.6x the cost.
_FLOW_MAX_PIXELS = 480 * 270
# A pixel whose forward-backward round trip misses by more than this (in pixels, plus a relative part) is
# taken as occluded in that keyframe.
_OCC_ABS, _OCC_REL = 1.0, 0.05
# DIS needs frames at least this many pixels on each side (checked from 1 to 4000 pixels: every size with both
# sides at 16 or more estimates; under it most sizes raise and some crash the process).
_MIN_FLOW_SIDE = 16


class FlowBackend(Backend):
    """Optical-flow in-betweening with forward-backward occlusion handling."""

    scales_with_workers = True

    name = "flow"
    description = "bidirectional optical flow (OpenCV DIS) with occlusion-aware blending (CPU, no weights)"
    version = "2"  # 2: flow at up to 480x270 (was 640x360)
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
        f01, f10 = self._flows(g0, g1)
        fh, fw = g0.shape
        grid = _grid(fh, fw)
        v0 = _visibility(f01, f10, grid)  # pixels of frame 0 that are visible in frame 1
        v1 = _visibility(f10, f01, grid)
        full_grid = _grid(h, w) if scale < 1.0 else grid
        a = request.start
        b = request.end
        for t in request.inbetween_times():
            # Flow from time t back to each keyframe (linear-motion approximation, Jiang et al. 2018).
            ft0 = cv2.addWeighted(f01, -(1 - t) * t, f10, t * t, 0.0)
            ft1 = cv2.addWeighted(f01, (1 - t) * (1 - t), f10, -t * (1 - t), 0.0)
            w0 = _warp(v0, ft0, grid)
            w1 = _warp(v1, ft1, grid)
            w0 *= 1 - t
            w1 *= t
            total = w0 + w1
            alpha = np.divide(w0, total, out=np.full_like(w0, 1 - t), where=total >= 1e-3)
            # occluded on both sides (total weight under 1e-3): the time weight
            if scale < 1.0:
                ft0, ft1 = (_upsample(f, w, h) for f in (ft0, ft1))
                alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
            yield _blend(_warp(a, ft0, full_grid), _warp(b, ft1, full_grid), alpha)

    def _flows(self, g0: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flows 0->1 and 1->0 of two gray frames. DIS takes frames at least _MIN_FLOW_SIDE on each side:
        under it, it raised for most sizes and crashed the process for others (SIGSEGV at 64x12, 128x8 and
        256x15: a `run` ended with exit 139 and no word). Smaller frames are estimated with their last row
        and column repeated to that size, and the flows cut back to the frames'."""
        fh, fw = g0.shape
        if min(fh, fw) >= _MIN_FLOW_SIDE:
            return self._dis.calc(g0, g1, None), self._dis.calc(g1, g0, None)
        grow = max(0, _MIN_FLOW_SIDE - fh), max(0, _MIN_FLOW_SIDE - fw)
        p0, p1 = (cv2.copyMakeBorder(g, 0, grow[0], 0, grow[1], cv2.BORDER_REPLICATE) for g in (g0, g1))
        return self._dis.calc(p0, p1, None)[:fh, :fw].copy(), self._dis.calc(p1, p0, None)[:fh, :fw].copy()


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
    """(h, w, 2) pixel coordinates x, y, interleaved as cv2.remap takes one map; made once per size (a batch's
    frames share it), read-only."""
    grid = np.dstack(np.mgrid[0:h, 0:w][::-1]).astype(np.float32)
    grid.flags.writeable = False
    return grid


def _upsample(flow: np.ndarray, w: int, h: int) -> np.ndarray:
    up = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.multiply(up, (w / flow.shape[1], h / flow.shape[0], 0.0, 0.0))  # per channel: x, y


def _warp(image: np.ndarray, flow: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Backward warp: out(x) = image(x + flow(x))."""
    return cv2.remap(image, cv2.add(grid, flow), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _visibility(f_ab: np.ndarray, f_ba: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """1.0 where following f_ab then f_ba returns near the start (visible in both), else 0.0; soft-edged."""
    back = _warp(f_ba, f_ab, grid)
    err = cv2.magnitude(*cv2.split(cv2.add(f_ab, back)))
    mag = cv2.add(cv2.magnitude(*cv2.split(f_ab)), cv2.magnitude(*cv2.split(back)))
    vis = (err <= _OCC_ABS + _OCC_REL * mag).astype(np.float32)
    return cv2.GaussianBlur(vis, (5, 5), 0)
