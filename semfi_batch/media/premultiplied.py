"""Frames with partial alpha are interpolated and resized premultiplied: each pixel's colour counts by how much
of it shows.

A frame's colour where its alpha is 0 shows nowhere (editors leave black, or any colour, there). Interpolated
or filtered as stored (straight), it showed: a white sprite fading in over transparent black came out grey,
over transparent magenta half magenta, and a moving or resized sprite's edges took the colour from under the
transparent ground. Colour multiplied by alpha, warped, blended or filtered with the same weights as the
alpha, and divided by the result's alpha is what the frames composited look like. `Backend.generate` hands
every backend such keys and turns its frames back to straight alpha, as PNG stores it; `media.frames.resize`
scales such keys so.

8-bit frames are premultiplied into 16 bits, so that dividing back gives every colour of an unchanged pixel
exactly; 16-bit frames stay at 16 bits (a colour under alpha a is kept to 65535/a of a step, what shows of it
to half a step). Where a result's alpha is 0 its colour is 0, as `media.frames` reads associated alpha."""

from __future__ import annotations

import numpy as np


def has_partial_alpha(*frames: np.ndarray) -> bool:
    """Any of `frames` has alpha and a pixel that is not opaque (opaque frames are not premultiplied: what is
    made of them is what is made of the same frames without alpha, bit for bit)."""
    return any(f.shape[2] == 4 and (f[..., 3] != np.iinfo(f.dtype).max).any() for f in frames)


def premultiplied(frame: np.ndarray) -> np.ndarray:
    """An RGBA frame (uint8 or uint16) as uint16 RGBA whose colour is multiplied by its alpha, rounded."""
    top = float(np.iinfo(frame.dtype).max)
    scale = 65535.0 / top  # 8-bit levels to 16-bit (x257)
    alpha = frame[..., 3:4].astype(np.float64)
    colour = frame[..., :3].astype(np.float64) * (alpha / top) * scale
    out = np.empty(frame.shape, np.uint16)
    out[..., :3] = np.floor(colour + 0.5)
    out[..., 3:] = alpha * scale
    return out


def straight(frame: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A frame `premultiplied` gave (uint16 RGBA) with its colour divided by its alpha, at `dtype`'s depth:
    0 where alpha is 0, at most full scale."""
    top = float(np.iinfo(dtype).max)
    alpha = frame[..., 3:4].astype(np.float64)
    colour = np.divide(frame[..., :3], alpha, out=np.zeros(frame[..., :3].shape), where=alpha > 0)
    out = np.empty(frame.shape, dtype)
    out[..., :3] = np.floor(np.clip(colour, 0.0, 1.0) * top + 0.5)
    out[..., 3:] = np.floor(alpha * (top / 65535.0) + 0.5)
    return out
