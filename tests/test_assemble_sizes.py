"""`assemble` of pairs of two sizes into a clip: ffmpeg scaled every frame to the first pair's size (.mp4,
.mov: exit 0) or lost frames (.gif); now refused, naming the frames and both sizes. A PNG sequence keeps
each frame at its own size."""

from __future__ import annotations

import numpy as np
import pytest

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import read_image, write_png


@pytest.fixture
def two_sizes_run(tmp_path):
    for name, (width, height) in {"a": (24, 16), "b": (24, 16), "c": (48, 32), "d": (48, 32)}.items():
        write_png(tmp_path / f"{name}.png", np.full((height, width, 3), ord(name), np.uint8))
    rows = [
        {"pair_id": "small", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1},
        {"pair_id": "large", "start_image": "c.png", "end_image": "d.png", "gap_frames": 1},
    ]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    return run


@pytest.mark.parametrize("name, codec", [("k.mp4", "h264"), ("k.mov", "prores"), ("k.gif", "h264")])
def test_a_clip_of_pairs_of_two_sizes_is_refused_naming_both(two_sizes_run, tmp_path, capsys, name, codec):
    out = tmp_path / name
    assert main(["assemble", str(two_sizes_run), "-o", str(out), "--codec", codec]) == 1
    error = capsys.readouterr().err
    assert "frame 4" in error and "large" in error and "48x32" in error and "24x16" in error
    assert not out.exists()


def test_a_png_sequence_keeps_both_sizes(two_sizes_run, tmp_path):
    assert main(["assemble", str(two_sizes_run), "-o", str(tmp_path / "seq")]) == 0
    sizes = [read_image(tmp_path / "seq" / f"{n:06d}.png").shape[:2] for n in range(1, 7)]
    assert sizes == [(16, 24)] * 3 + [(32, 48)] * 3
