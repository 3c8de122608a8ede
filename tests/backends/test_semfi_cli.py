"""`semfi-batch run --backend semfi` on a 2-row manifest, end to end on the tiny models."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
from conftest import keyframes

from semfi_batch.backends import InterpolationRequest
from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import read_image, write_png


def test_run_backend_semfi_on_a_two_row_manifest(tiny_semfi, semfi_backend, tmp_path):
    start, end = keyframes(40, 24, seed=5)
    write_png(tmp_path / "a.png", start)
    write_png(tmp_path / "b.png", end)
    rows = [
        {"pair_id": "short", "start_image": "a.png", "end_image": "b.png", "mode": "insert", "gap_frames": 3,
         "seed": 4, "prompt": "a ball rolls", "steps": 2, "shot": "s1"},
        {"pair_id": "long", "start_image": "a.png", "end_image": "b.png", "mode": "insert", "gap_frames": 6,
         "seed": 4, "prompt": "a ball rolls", "steps": 2, "shot": "s2"},
    ]  # fmt: skip
    manifest = write_manifest(rows, tmp_path / "pairs.parquet")
    out = tmp_path / "out"
    args = ["run", str(manifest), "--out", str(out), "--backend", "semfi", "--device", "cpu", "--quiet"]
    args += ["--models-dir", str(tiny_semfi.models_dir), "--semfi-ckpt", str(tiny_semfi.ckpt), "--ckpt-every", "1"]
    assert main(args) == 0

    metrics = {m["pair_id"]: m for m in pq.read_table(out / "metrics.parquet").to_pylist()}
    assert {k: (m["status"], m["frames"], m["shot"]) for k, m in metrics.items()} == {
        "short": ("done", 3, "s1"),
        "long": ("done", 6, "s2"),
    }
    for pair_id, gap, bucket in (("short", 3, 1), ("long", 6, 2)):
        frames = sorted((out / "jobs" / pair_id / "frames").glob("*.png"))
        assert len(frames) == gap
        got = np.stack([read_image(p) for p in frames])
        assert got.shape == (gap, 24, 40, 3)
        notes = json.loads((out / "jobs" / pair_id / "record.json").read_text())["notes"]
        assert notes["mol_branch"] == bucket and notes["n_generated"] in (5, 9)
        if pair_id == "short":  # the same seed through the Python interface gives the same frames
            request = InterpolationRequest(
                pair_id=pair_id, start=start, end=end, gap_frames=gap, seed=4, prompt="a ball rolls", steps=2
            )
            assert np.array_equal(got, np.stack(list(semfi_backend.interpolate(request))))
    assert not list((out / "work").iterdir())  # step checkpoints went with the finished jobs' work folders

    # The same command again is answered from the finished stamp, which holds the model files' identities: a
    # checkpoint touched since sends it down the normal path (which finds the same key and runs nothing).
    from semfi_batch.run import finished

    assert finished.answer(args) == 0
    os.utime(tiny_semfi.ckpt)
    assert finished.answer(args) is None
    assert main(args) == 0
    assert finished.answer(args) == 0
