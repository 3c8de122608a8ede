"""Broken weights (NaN or infinity) fail the job with a clear error instead of giving black frames (NaN cast
to uint8 is 0) reported as made."""

from __future__ import annotations

import pytest
import torch
from conftest import keyframes

from semfi_batch.backends import InterpolationRequest
from semfi_batch.errors import SemfiError


def _request() -> InterpolationRequest:
    start, end = keyframes(40, 24, seed=5)
    return InterpolationRequest(pair_id="p", start=start, end=end, gap_frames=3, seed=4, steps=2, cfg_scale=1.0)


def test_non_finite_latents_fail_the_job_naming_the_weights(semfi_backend, tiny_semfi):
    head = semfi_backend.pipe.dit.head.head.weight
    saved = head.detach().clone()
    try:
        with torch.no_grad():
            head[0, 0] = float("nan")
        with pytest.raises(SemfiError, match="non-finite latents") as caught:
            list(semfi_backend.interpolate(_request()))
        assert str(tiny_semfi.ckpt) in str(caught.value)
    finally:
        with torch.no_grad():
            head.copy_(saved)


def test_a_vae_that_decodes_non_finite_pixels_fails_the_job(semfi_backend, monkeypatch):
    vae = semfi_backend.pipe.vae
    real = vae.decode

    def decode_with_a_nan(*args, **kwargs):
        video = real(*args, **kwargs)
        video[..., 0, 0] = float("nan")
        return video

    monkeypatch.setattr(vae, "decode", decode_with_a_nan)
    with pytest.raises(SemfiError, match="VAE decoded non-finite pixels"):
        list(semfi_backend.interpolate(_request()))
