"""The size policy: the video model works on multiples of 16 pixels at most `max_area` pixels; the user gets
frames at the job's output size.

Keyframes larger than `max_area` are scaled down (aspect kept), then padded by edge replication, split evenly
on both sides, up to the next multiple of 16. Generated frames are cropped back to the unpadded content and
scaled to the output size. No content is ever cropped and the aspect ratio is never changed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from semfi_batch.media.frames import resize

SIZE_MULTIPLE = 16
# Wan2.1-14B-720P is trained at 1280x720; larger keyframes are generated at this area and scaled up.
DEFAULT_MAX_AREA = 1280 * 720


def _ceil_to(n: int, m: int) -> int:
    return max(m, -(-n // m) * m)


@dataclass(frozen=True)
class Geometry:
    """How one job's frames map to the model's frames and back."""

    out_size: tuple[int, int]  # (w, h) delivered
    content_size: tuple[int, int]  # (w, h) of the keyframes inside the model frame
    model_size: tuple[int, int]  # (w, h) the model generates, multiples of 16

    @property
    def pad(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) padding around the content."""
        (cw, ch), (mw, mh) = self.content_size, self.model_size
        top, left = (mh - ch) // 2, (mw - cw) // 2
        return top, mh - ch - top, left, mw - cw - left

    def to_model(self, frame: np.ndarray) -> np.ndarray:
        """A keyframe at the output size -> the model's input frame."""
        content = resize(frame, *self.content_size)
        top, bottom, left, right = self.pad
        if top == bottom == left == right == 0:
            return np.ascontiguousarray(content)
        return cv2.copyMakeBorder(content, top, bottom, left, right, cv2.BORDER_REPLICATE)

    def from_model(self, frame: np.ndarray) -> np.ndarray:
        """A generated frame -> a frame at the output size."""
        top, _, left, _ = self.pad
        cw, ch = self.content_size
        content = frame[top : top + ch, left : left + cw]
        return np.ascontiguousarray(resize(content, *self.out_size))


def plan_geometry(width: int, height: int, max_area: int = DEFAULT_MAX_AREA) -> Geometry:
    """The geometry for output frames of `width` x `height`."""
    scale = min(1.0, math.sqrt(max_area / float(width * height)))
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    return Geometry(
        out_size=(width, height),
        content_size=(cw, ch),
        model_size=(_ceil_to(cw, SIZE_MULTIPLE), _ceil_to(ch, SIZE_MULTIPLE)),
    )
