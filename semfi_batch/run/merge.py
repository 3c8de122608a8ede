"""Gather the records of a sharded run (one output root shared by all shards, or one root per shard) into
one metrics.parquet, leaving out stale jobs (made from other inputs or settings, or with outputs that no longer
match their record)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from semfi_batch.errors import SemfiError
from semfi_batch.manifest import load_manifest
from semfi_batch.run.engine import write_metrics
from semfi_batch.run.sources import manifest_sources
from semfi_batch.run.stale import published_job, run_planner


@dataclass
class MergeSummary:
    """Counts of a merge over the manifest's pairs."""

    out: Path
    done: int
    failed: int
    missing: list[str]
    stale: list[tuple[str, str]] = field(default_factory=list)  # (pair_id, why) left out


def merge_runs(roots: list[Path], out: Path | None = None) -> MergeSummary:
    """One metrics.parquet over the manifest of the first root, taking each pair's newest valid record from any
    root; stale records are left out and named."""
    roots = [Path(r) for r in roots]
    snapshot = roots[0] / "manifest.parquet"
    if not snapshot.exists():
        raise SemfiError(f"{roots[0]} is not a run folder (no manifest.parquet)")
    manifest = load_manifest(snapshot, check_media=False)
    planners = {root: run_planner(root) for root in roots}
    # Each root's sources as splice resolves them (a relative source against the manifest that root was given).
    sources = {root: manifest_sources(root, manifest) for root in roots}
    records: dict[str, dict] = {}
    stale: list[tuple[str, str]] = []
    for pair in manifest.pairs:
        found, reasons = [], []
        for root in roots:
            job_dir = root / "jobs" / pair.pair_id
            if not job_dir.is_dir():
                continue
            record, why = published_job(job_dir, pair, planners[root], sources[root].get(pair.pair_id))
            if record is not None:
                found.append(record)
            else:
                reasons.append(f"{job_dir}: {why}")
        if found:
            records[pair.pair_id] = max(found, key=lambda r: float(r.get("finished_ts", 0) or 0))
        elif reasons:
            stale.append((pair.pair_id, "; ".join(reasons)))
    target = Path(out) if out else roots[0] / "metrics.parquet"
    write_metrics(target, manifest, records)
    done = sum(r["status"] == "done" for r in records.values())
    left_out = {p for p, _ in stale}
    missing = [p.pair_id for p in manifest.pairs if p.pair_id not in records and p.pair_id not in left_out]
    return MergeSummary(out=target, done=done, failed=len(records) - done, missing=missing, stale=stale)
