"""`assemble` of a run folder given by a relative path, as `make keyframes-pipeline` gives it (RUNS=runs): the
keys of a manifest from `manifest from-images` were not found ("keyframe of ... not found", exit 1), as the
run's copy of the manifest placed them under the relative folder and they were looked for under the absolute
one."""

from __future__ import annotations

import numpy as np

from semfi_batch.cli import main
from semfi_batch.media.frames import write_png
from semfi_batch.media.probe import probe_video


def test_from_images_run_and_assemble_with_relative_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keys = tmp_path / "footage" / "keys"
    keys.mkdir(parents=True)
    for i in range(3):
        write_png(keys / f"key{i}.png", np.full((16, 24, 3), 80 * i, np.uint8))
    (tmp_path / "runs" / "k").mkdir(parents=True)
    manifest = "runs/k/manifest.parquet"  # its image paths relative to runs/k: ../../footage/keys/key0.png
    assert main(["manifest", "from-images", "footage/keys", "-o", manifest, "--gap", "1"]) == 0
    assert main(["run", manifest, "--out", "runs/k/run", "--quiet", "--backend", "blend", "--no-preview"]) == 0
    # A failed job's keys are the user's files, read where the run read them: one such pair, held.
    (tmp_path / "runs/k/run/jobs/key0--key1/record.json").unlink()
    assert main(["assemble", "runs/k/run", "-o", "runs/k/k.mp4", "--fps", "12"]) == 0
    assert probe_video(tmp_path / "runs/k/k.mp4").frame_count == 3 + 2
