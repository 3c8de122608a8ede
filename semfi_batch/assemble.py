"""Image-pair runs (animation keyframes) -> one clip: each key followed by its generated in-betweens.

Consecutive pairs share a key (pair i's end is pair i+1's start), which appears once. A pair whose job
failed or has not run holds its start key for the in-between frames, so the timing of the exposure sheet
is kept and the gap is visible."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semfi_batch.errors import SemfiError
from semfi_batch.manifest import load_manifest
from semfi_batch.media.frames import encode_png_sequence
from semfi_batch.run.ledger import read_record


@dataclass
class AssembleSummary:
    """What went into the clip."""

    out: Path
    frames: int
    generated: int
    held: list[str]  # pair_ids whose gap holds the start key (failed or not run)


def assemble_run(run_dir: Path, out: Path, fps: float) -> AssembleSummary:
    """Write `out` (H.264) from a run of image pairs, in manifest order."""
    run_dir = Path(run_dir)
    snapshot = run_dir / "manifest.parquet"
    if not snapshot.exists():
        raise SemfiError(f"{run_dir} is not a run folder (no manifest.parquet)")
    pairs = load_manifest(snapshot, check_media=False).pairs
    if any(p.is_video for p in pairs):
        raise SemfiError(f"{run_dir} has video rows: use `semfi-batch splice` to put them back into their videos")
    if not pairs:
        raise SemfiError(f"{run_dir} has no pairs")
    sequence: list[Path] = []
    generated, held = 0, []
    for i, pair in enumerate(pairs):
        if i == 0 or pair.start_image != pairs[i - 1].end_image:
            sequence.append(_key(run_dir, pair.pair_id, "start.png", pair.start_image))
        job = run_dir / "jobs" / pair.pair_id
        record = read_record(job)
        frames = sorted((job / "frames").glob("*.png")) if record and record.get("status") == "done" else []
        if len(frames) == pair.gap_frames:
            sequence.extend(frames)
            generated += len(frames)
        else:
            held.append(pair.pair_id)
            sequence.extend([sequence[-1]] * pair.gap_frames)
        sequence.append(_key(run_dir, pair.pair_id, "end.png", pair.end_image))
    out.parent.mkdir(parents=True, exist_ok=True)
    encode_png_sequence(sequence, out, fps)
    return AssembleSummary(out=out, frames=len(sequence), generated=generated, held=held)


def _key(run_dir: Path, pair_id: str, name: str, original: Path | None) -> Path:
    """The key as the run used it (resized to the output size), else the original file."""
    used = run_dir / "jobs" / pair_id / name
    if used.exists():
        return used
    if original is None or not original.exists():
        raise SemfiError(f"keyframe of {pair_id} not found: {original}")
    return original
