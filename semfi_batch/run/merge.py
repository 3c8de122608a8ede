"""Gather the records of a sharded run (one output root shared by all shards, or one root per shard) into
one metrics.parquet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semfi_batch.errors import SemfiError
from semfi_batch.manifest import load_manifest
from semfi_batch.run.engine import write_metrics
from semfi_batch.run.ledger import read_record


@dataclass
class MergeSummary:
    """Counts of a merge over the manifest's pairs."""

    out: Path
    done: int
    failed: int
    missing: list[str]


def merge_runs(roots: list[Path], out: Path | None = None) -> MergeSummary:
    """One metrics.parquet over the manifest of the first root, taking each pair's newest record from any root."""
    roots = [Path(r) for r in roots]
    snapshot = roots[0] / "manifest.parquet"
    if not snapshot.exists():
        raise SemfiError(f"{roots[0]} is not a run folder (no manifest.parquet)")
    manifest = load_manifest(snapshot, check_media=False)
    records: dict[str, dict] = {}
    for pair in manifest.pairs:
        found = [r for r in (read_record(root / "jobs" / pair.pair_id) for root in roots) if r is not None]
        if found:
            records[pair.pair_id] = max(found, key=lambda r: float(r.get("finished_ts", 0)))
    target = Path(out) if out else roots[0] / "metrics.parquet"
    write_metrics(target, manifest, records)
    done = sum(r["status"] == "done" for r in records.values())
    missing = [p.pair_id for p in manifest.pairs if p.pair_id not in records]
    return MergeSummary(out=target, done=done, failed=len(records) - done, missing=missing)
