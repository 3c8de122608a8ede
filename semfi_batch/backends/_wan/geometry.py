"""The size policy, as the reference's: the video model works on multiples of 16 pixels, at most `max_area`
pixels; the user gets frames at the job's output size.

Keyframes are resized (stretched, no padding) to the model size: the output size scaled down to `max_area`
when larger (aspect kept), then each side rounded up to a multiple of 16 as the reference's
`check_resize_height_width` does (down instead when rounding up would exceed `max_area`), so the aspect
ratio changes by less than 16 pixels' worth on a side. The resize uses PIL's bicubic filter, the reference's
`Image.resize`. Generated frames are resized back to the output size."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from semfi_batch.media.frames import resize

SIZE_MULTIPLE = 16
# Wan2.1-14B-720P is trained at 1280x720; larger keyframes are generated at this area and scaled up.
DEFAULT_MAX_AREA = 1280 * 720


def _ceil_to(n: float, m: int) -> int:
    return max(m, math.ceil(n / m) * m)


def _floor_to(n: float, m: int) -> int:
    return max(m, math.floor(n / m) * m)


@dataclass(frozen=True)
class Geometry:
    """How one job's frames map to the model's frames and back."""

    out_size: tuple[int, int]  # (w, h) delivered
    model_size: tuple[int, int]  # (w, h) the model generates, multiples of 16

    def to_model(self, frame: np.ndarray) -> np.ndarray:
        """A keyframe at the output size -> the model's input frame (PIL bicubic, as the reference)."""
        if (frame.shape[1], frame.shape[0]) == self.model_size:
            return np.ascontiguousarray(frame)
        return np.asarray(Image.fromarray(frame).resize(self.model_size, Image.BICUBIC))

    def from_model(self, frame: np.ndarray) -> np.ndarray:
        """A generated frame -> a frame at the output size."""
        return np.ascontiguousarray(resize(frame, *self.out_size))


def plan_geometry(width: int, height: int, max_area: int = DEFAULT_MAX_AREA) -> Geometry:
    """The geometry for output frames of `width` x `height`."""
    scale = min(1.0, math.sqrt(max_area / float(width * height)))
    w, h = width * scale, height * scale
    size = (_ceil_to(w, SIZE_MULTIPLE), _ceil_to(h, SIZE_MULTIPLE))
    if size[0] * size[1] > max_area:
        size = (_floor_to(w, SIZE_MULTIPLE), _floor_to(h, SIZE_MULTIPLE))
    return Geometry(out_size=(width, height), model_size=size)
