"""`flow` on frames of any size: OpenCV's DIS takes frames at least 16 pixels on each side; under it most sizes
raised and some crashed the process (SIGSEGV at 64x12: `semfi-batch run` ended with exit 139 and no word)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import read_image

# (width, height): crashed DIS (64x12, 128x8), raised (400x7, 2x2, 1x9), and worked before (12x12, 16x16).
SIZES = [(64, 12), (128, 8), (400, 7), (2, 2), (1, 9), (12, 12), (16, 16)]


def test_flow_makes_frames_of_any_size_without_crashing(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for w, h in SIZES:
        start = rng.integers(0, 256, (h, w, 3), np.uint8)
        end = np.roll(start, 1, axis=1)  # a one-pixel move
        for name, pixels in (("a", start), ("b", end)):
            Image.fromarray(pixels).save(tmp_path / f"{name}{w}x{h}.png")
        rows.append({"pair_id": f"p{w}x{h}", "start_image": str(tmp_path / f"a{w}x{h}.png"),
                     "end_image": str(tmp_path / f"b{w}x{h}.png"), "gap_frames": 2})  # fmt: skip
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    # In a process of its own: before, DIS crashed the process that ran it.
    done = subprocess.run(
        [sys.executable, "-m", "semfi_batch", "run", str(manifest), "--out", str(run), "--backend", "flow",
         "--quiet", "--workers", "1", "--no-preview"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for w, h in SIZES:
        job = run / "jobs" / f"p{w}x{h}"
        assert json.loads((job / "record.json").read_text())["status"] == "done"
        frames = sorted((job / "frames").iterdir())
        assert len(frames) == 2
        for frame in frames:
            assert read_image(frame).shape == (h, w, 3), f"{frame} of {w}x{h}"
