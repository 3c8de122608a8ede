"""Frames of a variable-frame-rate source are made at the times they are placed at (found with exit 0: frames
were made at even times between the keys and shown at the source's uneven ones, the motion of another moment)."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from semfi_batch.cli import main
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import read_image


def _vfr_clip(tmp_path):
    """Frames 30 and 50 ms apart by turns (a phone dropping frames): frame 10 at 0.40 s, 11 at 0.43 s, 12 at
    0.48 s, 13 at 0.51 s."""
    dense = tmp_path / "dense.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=100:d=1", "-c:v", "ffv1",
                    str(dense)], check=True)  # fmt: skip
    clip = tmp_path / "vfr.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(dense), "-vf", "select='eq(mod(n\\,8)\\,0)+eq(mod(n\\,8)\\,3)'",
                    "-fps_mode", "passthrough", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p",
                    "-video_track_timescale", "1000", str(clip)], check=True)  # fmt: skip
    return clip


def test_frames_between_uneven_keys_are_made_at_their_own_times(tmp_path):
    clip = _vfr_clip(tmp_path)
    rows = [
        {"pair_id": "uneven", "source": str(clip), "start_frame": 10, "end_frame": 12},  # 0.43 s: 3/8 of the way
        {"pair_id": "later", "source": str(clip), "start_frame": 11, "end_frame": 13},  # 0.48 s: 5/8 of the way
    ]
    manifest = write_manifest(rows, tmp_path / "m.parquet")
    run = tmp_path / "run"
    assert main(["run", str(manifest), "--out", str(run), "--quiet", "--backend", "blend", "--no-preview"]) == 0
    for pair_id, t in (("uneven", 0.375), ("later", 0.625)):
        job = run / "jobs" / pair_id
        start, end = (read_image(job / name).astype(float) for name in ("start.png", "end.png"))
        made = read_image(job / "frames" / "000001.png").astype(float)
        assert np.abs(made - ((1 - t) * start + t * end)).max() <= 1, f"{pair_id}: not made at t={t}"
        notes = json.loads((job / "record.json").read_text())["notes"]
        assert notes.get("uneven_times") == [t]
