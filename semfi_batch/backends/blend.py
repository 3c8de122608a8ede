"""`blend`: a plain cross-fade. The baseline every other backend must beat."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from semfi_batch.backends.base import Backend, InterpolationRequest


class BlendBackend(Backend):
    """Linear cross-fade between the two keyframes."""

    scales_with_workers = True

    name = "blend"
    description = "cross-fade between the keyframes (baseline; CPU, no weights)"
    deep_frames = True  # any depth and channels: alpha fades with the colour

    @classmethod
    def deciding_files(cls, options) -> list:
        return []  # no model: the code and the command line decide all

    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        a = request.start.astype(np.float32)
        b = request.end.astype(np.float32)
        top = float(np.iinfo(request.start.dtype).max)
        for t in request.inbetween_times():
            yield np.clip((1.0 - t) * a + t * b + 0.5, 0, top).astype(request.start.dtype)
