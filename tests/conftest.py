"""Shared fixtures: tiny synthetic media made with ffmpeg lavfi, real clips from ../shared/footage, and
a guard that fails any test that logs at ERROR."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FOOTAGE = REPO.parent / "shared" / "footage"
# The CLI's tables are as wide as the terminal, 80 columns without one: a longer temporary folder (another
# pytest run, a parallel worker) cut the cells the tests read ("tape.m…"). Wide enough for any of them.
os.environ["COLUMNS"] = "200"


def numbered_clip(path: Path, frames: int, *, fps: str = "25", size: str = "64x48", codec: str = "libx264") -> Path:
    """A clip whose frame n shows n: the left half has luma 16*(n % 14) + 16 and the right half
    16*(n // 14) + 16 (lossless H.264 keeps luma exact). Decode with `frame_number`."""
    lum = "if(lt(X,W/2),16*mod(N,14)+16,16*floor(N/14)+16)"
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"nullsrc=s={size}:r={fps}"]
    args += ["-vf", f"geq=lum='{lum}':cb=128:cr=128", "-frames:v", str(frames)]
    if codec == "libx264":
        args += ["-c:v", "libx264", "-qp", "0", "-g", "12", "-bf", "2", "-pix_fmt", "yuv420p"]
    else:
        args += ["-c:v", codec]
    subprocess.run([*args, str(path)], check=True)
    return path


def frame_number(rgb: np.ndarray) -> int:
    """Inverse of `numbered_clip`'s pattern, read from the middle of each half."""
    h, w = rgb.shape[:2]
    left = float(rgb[h // 4 : 3 * h // 4, w // 8 : 3 * w // 8].mean())
    right = float(rgb[h // 4 : 3 * h // 4, 5 * w // 8 : 7 * w // 8].mean())

    def level(v: float) -> int:
        # Limited-range luma Y maps to RGB (Y - 16) * 255 / 219.
        y = v * 219.0 / 255.0 + 16.0
        return int(round((y - 16.0) / 16.0))

    return level(left) + 14 * level(right)


@pytest.fixture
def clip_factory(tmp_path):
    """Make numbered clips in the test's temporary folder."""

    def make(frames: int = 30, name: str = "numbered.mp4", **kw) -> Path:
        return numbered_clip(tmp_path / name, frames, **kw)

    return make


@pytest.fixture
def real_clip():
    """Path of a real clip in ../shared/footage/clips (skips when the footage folder is absent)."""

    def get(name: str) -> Path:
        path = FOOTAGE / "clips" / name
        if not path.exists():
            pytest.skip(f"real footage not found: {path}")
        return path

    return get


@pytest.fixture(autouse=True)
def no_error_logs(caplog):
    """Fail any test during which something logged at ERROR or above."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    if errors:
        pytest.fail(f"logged at ERROR: {[r.getMessage() for r in errors]}")
