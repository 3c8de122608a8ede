"""Gather the records of a sharded run (one output root shared by all shards, or one root per shard) into
one metrics.parquet, leaving out stale jobs (made from other inputs or settings, or with outputs that no longer
match their record).

Separate roots are merged only when they are shards of one run: made with the same settings (the rules `run`
applies to one root) and from the same manifest (by content). Anything else is refused (exit 2) naming the
roots and what differs, so that the answer never depends on the order the roots are given in. The merged file
of several roots is never written over a root's own metrics (which a later `run` of that root keeps)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from semfi_batch.errors import OutputPathError, RunSettingsMismatch, SemfiError
from semfi_batch.manifest import KeyframePair, Manifest, load_manifest
from semfi_batch.run.engine import settings_differences, write_metrics
from semfi_batch.run.layout import RUN_FILES, check_outside_state
from semfi_batch.run.sources import RUN_INFO_NAME, rows_as_run
from semfi_batch.run.stale import published_job, run_planner

MERGED_NAME = "metrics.merged.parquet"  # the default output of several roots, in the first one
SHOWN = 5  # pair_ids named per kind of difference between two manifests


@dataclass
class MergeSummary:
    """Counts of a merge over the manifest's pairs."""

    out: Path
    done: int
    failed: int
    missing: list[str]
    stale: list[tuple[str, str]] = field(default_factory=list)  # (pair_id, why) left out


def merge_runs(roots: list[Path], out: Path | None = None) -> MergeSummary:
    """One metrics.parquet over the roots' common manifest, taking each pair's job from any root where it is
    current (its key is the row's, its outputs match): the newest done one, else the newest failed one; stale
    records are left out and named. Roots made with other settings or manifests are refused."""
    roots = [Path(r) for r in roots]
    manifests = {root: _run_manifest(root) for root in roots}
    # Each root's rows with their files as splice resolves them (relative: against the manifest the root was given).
    rows = {root: rows_as_run(root, manifests[root]) for root in roots}
    _refuse_other_settings(roots)
    _refuse_other_manifests(roots, rows)
    target = merged_path(roots, out)
    manifest = manifests[roots[0]]
    planners = {root: run_planner(root) for root in roots}
    records: dict[str, dict] = {}
    stale: list[tuple[str, str]] = []
    for pair in manifest.pairs:
        found, reasons = [], []
        for root in roots:
            job_dir = root / "jobs" / pair.pair_id
            if not job_dir.is_dir():
                continue
            record, why = published_job(job_dir, rows[root][pair.pair_id], planners[root])
            if record is not None:
                found.append(record)
            else:
                reasons.append(f"{job_dir}: {why}")
        if found:
            # A job done and current beats a failure of it elsewhere, however recent the failure.
            records[pair.pair_id] = max(
                found, key=lambda r: (r.get("status") == "done", float(r.get("finished_ts", 0) or 0))
            )
        elif reasons:
            stale.append((pair.pair_id, "; ".join(reasons)))
    write_metrics(target, manifest, records)
    done = sum(r["status"] == "done" for r in records.values())
    left_out = {p for p, _ in stale}
    missing = [p.pair_id for p in manifest.pairs if p.pair_id not in records and p.pair_id not in left_out]
    return MergeSummary(out=target, done=done, failed=len(records) - done, missing=missing, stale=stale)


def merged_path(roots: list[Path], out: Path | None) -> Path:
    """Where the merged metrics go: `out`, else the root's metrics.parquet (one root) or MERGED_NAME in the first
    root (several). Several roots' jobs are never written over a root's own metrics file, nor anything over a
    shard's: `run` keeps a metrics file newer than its ledger, and it would then list other roots' jobs."""
    if out is None:
        return roots[0] / ("metrics.parquet" if len(roots) == 1 else MERGED_NAME)
    target = Path(out)
    for root in roots:
        check_outside_state(target, root)
        if not _same_folder(target.parent, root):
            continue
        if target.name in RUN_FILES and target.name != "metrics.parquet":
            raise OutputPathError(f"output {target} is a file of the run {root}; choose another file")
        if target.name.startswith("metrics.shard-") or (target.name == "metrics.parquet" and len(roots) > 1):
            raise OutputPathError(
                f"output {target} is the run's own metrics of {root}, which a later `run` there keeps: the merged "
                f"jobs of several roots or shards would stand for that root's; choose another file (default: "
                f"{roots[0] / MERGED_NAME})"
            )
    return target


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _run_manifest(root: Path) -> Manifest:
    snapshot = root / "manifest.parquet"
    if not snapshot.exists():
        raise SemfiError(f"{root} is not a run folder (no manifest.parquet)")
    return load_manifest(snapshot, check_media=False)


def _run_settings(root: Path) -> dict | None:
    """The settings in a root's run.json; None for roots made before settings were kept."""
    try:
        info = json.loads((root / RUN_INFO_NAME).read_text())
    except (OSError, ValueError):
        return None
    settings = info.get("settings") if isinstance(info, dict) else None
    return settings if isinstance(settings, dict) else None


def _refuse_other_settings(roots: list[Path]) -> None:
    """Refuse (exit 2) two roots whose settings `run` would refuse in one root, naming both and what differs."""
    settings = {root: _run_settings(root) for root in roots}
    known = [root for root in roots if settings[root] is not None]
    for i, first in enumerate(known):
        for other in known[i + 1 :]:
            a, b = first, other
            differences = settings_differences(settings[a], settings[b])
            if not differences:
                a, b = other, first
                differences = settings_differences(settings[a], settings[b])
            if differences:
                raise RunSettingsMismatch(
                    f'{a} and {b} hold results made with other settings: {"; ".join(differences)} ("this run" '
                    f"being {b}). Merge only roots run with the same settings"
                )


def _refuse_other_manifests(roots: list[Path], rows_of: dict[Path, dict[str, KeyframePair]]) -> None:
    """Refuse (exit 2) roots run from manifests that differ by content: which root's row would count depends on
    the order they are given in. Rows are compared with their files resolved as splice resolves them."""
    rows = {root: {p: _comparable(pair) for p, pair in rows_of[root].items()} for root in roots}
    first = roots[0]
    for other in roots[1:]:
        a, b = rows[first], rows[other]
        changed = [p for p in a if p in b and a[p] != b[p]]
        only_first = [p for p in a if p not in b]
        only_other = [p for p in b if p not in a]
        if changed or only_first or only_other:
            what = [
                f"{len(ids)} {kind}: {', '.join(ids[:SHOWN])}{', ...' if len(ids) > SHOWN else ''}"
                for ids, kind in (
                    (changed, "row(s) differ"),
                    (only_first, f"row(s) only in {first}"),
                    (only_other, f"row(s) only in {other}"),
                )
                if ids
            ]
            raise RunSettingsMismatch(
                f"{first} and {other} were run from different manifests ({'; '.join(what)}). Run each root again "
                "with the same manifest (only its changed rows run), then merge"
            )


def _comparable(pair: KeyframePair) -> str:
    """A manifest row as text to compare (its place in the file left out)."""
    return json.dumps(dataclasses.asdict(dataclasses.replace(pair, row=0)), sort_keys=True, default=str)
