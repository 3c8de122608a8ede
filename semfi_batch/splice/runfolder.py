"""Reading a run folder (OUT/manifest.parquet, OUT/run.json, OUT/jobs/<pair_id>/) into the edits to splice,
per source video, and the jobs that cannot be spliced with the reason why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semfi_batch.errors import SemfiError
from semfi_batch.manifest import KeyframePair, load_manifest
from semfi_batch.review.decisions import ReviewFilter
from semfi_batch.run.job import JobPlanner
from semfi_batch.run.sources import manifest_sources
from semfi_batch.run.stale import published_job, run_planner

MANIFEST_NAME = "manifest.parquet"
RECORD_NAME = "record.json"


class RunFolderError(SemfiError):
    """The folder is not a run output (no manifest.parquet) or cannot be read."""

    exit_code = 2


@dataclass(frozen=True)
class Edit:
    """One finished job to put back into its source: generated frames for frames (start_frame, end_frame)."""

    pair_id: str
    mode: str  # "replace" | "insert"
    start_frame: int
    end_frame: int
    frames: tuple[Path, ...]  # generated PNGs in time order
    job_dir: Path
    reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    decision: str = "undecided"  # the reviewer's (semfi-batch review): accepted, undecided; rejected are left out

    @property
    def gap_frames(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class Skipped:
    """A manifest row left out of the splice, with the reason; its range stays untouched."""

    pair_id: str
    source: Path | None
    why: str


@dataclass
class RunEdits:
    """Everything a splice needs from a run folder."""

    run_dir: Path
    sources: dict[Path, list[Edit]]  # every source video of the manifest, in manifest order
    skipped: list[Skipped]


def read_run(run_dir: Path, *, accepted_only: bool = False) -> RunEdits:
    """Load the run's manifest and job records. Rows whose job is missing, failed, stale or incomplete are
    listed in `skipped`; image-pair rows (no source video) too, and jobs rejected in review (with
    `accepted_only`, every job not accepted)."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / MANIFEST_NAME
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder not found: {run_dir}")
    if not manifest_path.exists():
        raise RunFolderError(f"{run_dir} is not a run folder: no {MANIFEST_NAME} (make one with `semfi-batch run`)")
    spliced = run_dir / "spliced"
    if spliced.is_symlink():
        raise RunFolderError(f"{spliced} is a symlink; splice never writes through one: remove it")
    manifest = load_manifest(manifest_path, check_media=False)
    review = ReviewFilter(run_dir, accepted_only=accepted_only)
    planner = run_planner(run_dir)
    resolved = manifest_sources(run_dir, manifest)
    sources: dict[Path, list[Edit]] = {}
    skipped: list[Skipped] = []
    for pair in manifest.pairs:
        if pair.source is None:
            skipped.append(Skipped(pair.pair_id, None, "image pair (no source video to splice into)"))
            continue
        source = resolved[pair.pair_id]
        sources.setdefault(source, [])
        edit, why = _edit_for(pair, run_dir / "jobs" / pair.pair_id, planner, source)
        if edit is not None:
            edit, why = review.apply(edit)
        if edit is None:
            skipped.append(Skipped(pair.pair_id, source, why))
        else:
            sources[source].append(edit)
    return RunEdits(run_dir=run_dir, sources=sources, skipped=skipped)


def _edit_for(pair: KeyframePair, job_dir: Path, planner: JobPlanner | None, source: Path) -> tuple[Edit | None, str]:
    record_path = job_dir / RECORD_NAME
    if not record_path.exists():
        return None, "no finished job (run `semfi-batch run` on the manifest first)"
    # The job must be this row's as it stands now (its source by content) and its outputs must match its record.
    record, why = published_job(job_dir, pair, planner, source)
    if record is None:
        return None, why
    if record.get("status") != "done":
        error = record.get("error") or "no error message"
        return None, f"job {record.get('status', 'unknown')}: {error}"
    for name, expected in (
        ("mode", pair.mode),
        ("start_frame", pair.start_frame),
        ("end_frame", pair.end_frame),
        ("gap_frames", pair.gap_frames),
    ):
        if name in record and record[name] != expected:
            return None, f"job record has {name}={record[name]!r} but the manifest row has {expected!r} (stale job)"
    frames = tuple(sorted((job_dir / "frames").glob("*.png")))
    if len(frames) != pair.gap_frames:
        return None, f"job folder has {len(frames)} frames, expected {pair.gap_frames}"
    assert pair.start_frame is not None and pair.end_frame is not None
    reason = pair.extras.get("reason")
    return (
        Edit(
            pair_id=pair.pair_id,
            mode=pair.mode,
            start_frame=int(pair.start_frame),
            end_frame=int(pair.end_frame),
            frames=frames,
            job_dir=job_dir,
            reason=str(reason) if reason not in (None, "") else None,
            extras=dict(pair.extras),
        ),
        "",
    )
