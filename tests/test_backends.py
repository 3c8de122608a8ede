import cv2
import numpy as np
import pytest

from semfi_batch.backends import backend_class, backend_names
from semfi_batch.backends.base import BackendOptions, InterpolationRequest
from semfi_batch.cli import main
from semfi_batch.errors import UnknownBackend
from semfi_batch.media.frames import read_image
from tests.conftest import FOOTAGE

SINTEL = FOOTAGE / "frames" / "sintel_demo"


def moving_square(t: float, shift: int = 16) -> np.ndarray:
    """Known motion: a 64x64 patch of a real frame moving `shift` px right over another part of it (skips where
    the footage folder is absent, as `real_clip` does)."""
    if not (SINTEL / "frame_0016.png").exists():
        pytest.skip(f"real footage not found: {SINTEL}")
    src = read_image(SINTEL / "frame_0016.png")
    img = src[100:292, 300:556].copy()
    x = int(round(40 + shift * t))
    img[64:128, x : x + 64] = src[200:264, 700:764]
    return img


@pytest.mark.parametrize("name", ["flow", "blend"])
def test_backend_yields_exact_count_and_shape(name):
    backend = backend_class(name)(BackendOptions())
    a, b = moving_square(0), moving_square(1)
    frames = list(backend.interpolate(InterpolationRequest("p", a, b, gap_frames=5, seed=0)))
    assert len(frames) == 5 and all(f.shape == a.shape and f.dtype == np.uint8 for f in frames)


def test_flow_beats_blend_on_known_motion():
    a, b = moving_square(0), moving_square(1)
    truth = [moving_square(t) for t in (0.25, 0.5, 0.75)]
    scores = {}
    for name in ("flow", "blend"):
        out = backend_class(name)(BackendOptions()).interpolate(InterpolationRequest("p", a, b, 3, 0))
        scores[name] = np.mean([cv2.PSNR(f, g) for f, g in zip(list(out), truth, strict=True)])
    assert scores["flow"] > scores["blend"] + 4, scores


def test_flow_beats_blend_on_real_sintel_frames():
    frames = sorted(SINTEL.glob("frame_*.png"))
    if len(frames) < 3:
        pytest.skip("sintel frames not available")
    a, mid, b = (read_image(p) for p in frames[:3])
    psnr = {
        name: cv2.PSNR(next(iter(backend_class(name)().interpolate(InterpolationRequest("s", a, b, 1, 0)))), mid)
        for name in ("flow", "blend")
    }
    assert psnr["flow"] > psnr["blend"] + 3, psnr


def test_registry_names_and_unknown():
    assert backend_names()[0] == "flow" and "blend" in backend_names()
    with pytest.raises(UnknownBackend, match="known: flow"):
        backend_class("nope")


def test_backends_command_lists_each_backend(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "flow (default)" in out and "blend" in out
