"""Quality figures: PSNR/SSIM are scikit-image's, warp error separates steady motion from flicker and
ghosting, and occlusions are masked."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from semfi_batch.media.frames import read_image
from semfi_batch.metrics import (
    PSNR_CAP_DB,
    analysis_size,
    job_warp_error,
    motion_field,
    motion_fields,
    psnr,
    ssim,
    warp_error,
)
from tests.conftest import FOOTAGE


def texture(h: int = 120, w: int = 200, seed: int = 0) -> np.ndarray:
    """Smooth random colour texture (trackable by optical flow), uint8 RGB."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 6 + 2, w // 6 + 2, 3), dtype=np.uint8)
    big = cv2.resize(small, (w + 12, h + 12), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[:h, :w])


def translated(base: np.ndarray, n: int, dx: int) -> list[np.ndarray]:
    """n frames of `base` scrolled right by dx pixels per frame (wrapping)."""
    return [np.roll(base, i * dx, axis=1) for i in range(n)]


def test_psnr_and_ssim_are_scikit_images_numbers_on_real_frames():
    folder = FOOTAGE / "frames" / "sintel_demo"
    if not folder.exists():
        pytest.skip(f"real footage not found: {folder}")
    a = read_image(folder / "frame_0016.png")
    b = read_image(folder / "frame_0017.png")
    assert psnr(a, b) == peak_signal_noise_ratio(a, b, data_range=255)
    assert ssim(a, b) == structural_similarity(a, b, channel_axis=-1, data_range=255)
    assert 10 < psnr(a, b) < 40 and 0.3 < ssim(a, b) < 1.0


def test_psnr_of_identical_frames_is_capped_and_shapes_must_match():
    a = texture()
    assert psnr(a, a) == PSNR_CAP_DB
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, a[:, :-1])


def test_warp_error_is_low_for_steady_motion_and_high_for_flicker():
    frames = translated(texture(), 5, 3)
    steady = warp_error(frames)
    flicker = [np.clip(f.astype(int) + (25 if i % 2 else -25), 0, 255).astype(np.uint8) for i, f in enumerate(frames)]
    assert steady < 2.0
    assert warp_error(flicker) > 10 * steady


def test_warp_error_along_true_motion_punishes_a_cross_fade():
    frames = translated(texture(seed=1), 5, 4)
    fields = motion_fields(frames)  # the "original" motion
    fade = [frames[0]]
    fade += [
        ((1 - t) * frames[0].astype(np.float32) + t * frames[-1].astype(np.float32) + 0.5).astype(np.uint8)
        for t in (0.25, 0.5, 0.75)
    ]
    fade.append(frames[-1])
    truth = warp_error(frames, fields)
    assert truth < 2.0
    assert warp_error(fade, fields) > 4 * truth
    with pytest.raises(ValueError, match="motion fields"):
        warp_error(frames, fields[:-1])


def test_motion_field_recovers_translation_and_masks_what_enters_the_frame():
    base = texture(seed=2)
    prev = base[:, 10:170]
    cur = base[:, 4:164]  # content moved right by 6 pixels: cur(x) = prev(x - 6)
    field = motion_field(prev, cur)
    inner = field.flow[10:-10, 20:-20]
    assert np.median(inner[..., 0]) == pytest.approx(-6.0, abs=0.3)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.3)
    # The left 6 columns of cur show content that prev does not have: masked out; the middle is trusted.
    assert field.valid[:, :4].mean() < 0.3
    assert field.valid[10:-10, 20:-20].mean() > 0.9


def test_large_frames_are_measured_at_analysis_size():
    assert analysis_size(1280, 720) == (640, 360)
    assert analysis_size(160, 120) == (160, 120)
    frames = translated(texture(720, 1280, seed=3), 3, 8)
    field = motion_field(frames[0], frames[1])
    assert field.size == (640, 360)
    assert np.median(field.flow[50:-50, 50:-50, 0]) == pytest.approx(-4.0, abs=0.3)  # 8 px at half size
    assert job_warp_error(frames[0], frames[1:2], frames[2]) < 3.0
