"""A tiny real run folder for the review tests: a 64x48 lossless clip whose frame n shows n, three jobs
(two replace rows, one insert row) run with the blend backend. The replace rows straddle frames 14 and 28,
where the clip's number pattern wraps, so a cross-fade there reads as no original frame."""

from __future__ import annotations

from pathlib import Path

from semfi_batch.backends import BackendOptions
from semfi_batch.manifest import write_manifest
from semfi_batch.run.engine import run_manifest
from tests.conftest import numbered_clip

ROWS = [
    {"pair_id": "a_flash", "start_frame": 12, "end_frame": 16, "mode": "replace", "reason": "flash", "score": 41.25},
    {"pair_id": "b_black", "start_frame": 26, "end_frame": 30, "mode": "replace", "reason": "black", "score": 1.5},
    {"pair_id": "c_cut", "start_frame": 34, "end_frame": 35, "mode": "insert", "gap_frames": 3, "reason": "cut"},
]


def make_run(folder: Path, frames: int = 40) -> Path:
    """folder/clip.mp4, folder/m.parquet and the finished run folder folder/run (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    numbered_clip(folder / "clip.mp4", frames)
    manifest = write_manifest([{"source": "clip.mp4", **row} for row in ROWS], folder / "m.parquet")
    # The cut row is bridged by a cross-fade on purpose (a morph): the review tests need one insert job.
    options = BackendOptions(extra={"allow_morph": True})
    summary = run_manifest(manifest, folder / "run", backend="blend", options=options, show_progress=False,
                           preview=False)  # fmt: skip
    assert summary.done == len(ROWS), summary.failures
    return folder / "run"
