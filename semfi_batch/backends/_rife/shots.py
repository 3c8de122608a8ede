"""Do two keyframes belong to one shot? The test Practical-RIFE's video tool makes before interpolating:
SSIM of the two frames shrunk to 32x32; below 0.2 they are taken as different shots (a cut), where a flow
model can only morph one picture into the other."""

from __future__ import annotations

import cv2
import numpy as np

SHOT_SIZE = 32
DIFFERENT_SHOTS_SSIM = 0.2
_C1, _C2 = 0.01**2, 0.03**2


def shot_similarity(start: np.ndarray, end: np.ndarray) -> float:
    """SSIM (Gaussian window 11, sigma 1.5, per colour channel, averaged) of the two frames at 32x32: 8 or 16-bit,
    RGB or RGBA (alpha left out)."""
    top = float(np.iinfo(start.dtype).max)
    a, b = (cv2.resize(np.ascontiguousarray(im[..., :3]), (SHOT_SIZE, SHOT_SIZE), interpolation=cv2.INTER_AREA)
            .astype(np.float64) / top for im in (start, end))  # fmt: skip

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2))
    return float(ssim_map.mean())


def same_shot(start: np.ndarray, end: np.ndarray) -> tuple[bool, float]:
    """(whether the keyframes look like one shot, their 32x32 SSIM)."""
    similarity = shot_similarity(start, end)
    return similarity >= DIFFERENT_SHOTS_SSIM, similarity
