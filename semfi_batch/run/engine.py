"""The local batch engine: validate, plan, skip what is done, run the rest, write metrics."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from semfi_batch.backends import DEFAULT_BACKEND, BackendOptions, backend_class
from semfi_batch.backends.routing import refuse_cut_morphs
from semfi_batch.errors import BackendUnavailable, SemfiError
from semfi_batch.manifest import Manifest, load_manifest
from semfi_batch.media.keyframe_cache import fill_for_pairs, keyframe_cache_for
from semfi_batch.plan import shard_of
from semfi_batch.review.decisions import mark_regenerated, regeneration_overrides
from semfi_batch.run.job import Job, JobPlanner
from semfi_batch.run.layout import RunLayout
from semfi_batch.run.lease import DEFAULT_TTL_S
from semfi_batch.run.ledger import JobLedger
from semfi_batch.run.worker import ClaimSettings, finished_record, work_through, worker_process

METRIC_COLUMNS = (
    "pair_id", "status", "error", "backend", "wall_s", "frames", "s_per_frame", "peak_rss_mb", "peak_gpu_mb",
    "mode", "source", "start_frame", "end_frame", "start_image", "end_image", "gap_frames", "width", "height",
    "seed", "requested_backend",
)  # fmt: skip


@dataclass
class RunSummary:
    """What a run did: counts over the whole manifest and the failures with their errors."""

    out: Path
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    ran: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    wall_s: float = 0.0
    metrics_path: Path | None = None

    @property
    def metrics(self) -> Path:
        return self.metrics_path or self.out / "metrics.parquet"


@dataclass
class JobPlan:
    """Jobs split by what the ledger says of them."""

    todo: list[Job]
    finished: list[Job]  # published with their current key; will not run


def default_out_dir(manifest_path: Path) -> Path:
    """runs/<manifest stem> under the current directory."""
    return Path("runs") / Path(manifest_path).stem


def prepare_run(
    manifest_path: Path, out_dir: Path | None, backend: str, options: BackendOptions
) -> tuple[Manifest, RunLayout, list[Job]]:
    """Validate the manifest, check every backend it needs can run here, create the output root and plan jobs."""
    manifest = load_manifest(manifest_path)
    root = Path(out_dir) if out_dir else default_out_dir(manifest_path)
    planner = JobPlanner(backend, options, overrides=regeneration_overrides(root))
    jobs = [planner.plan(pair) for pair in manifest.pairs]
    refuse_cut_morphs(jobs, options)
    for name in sorted({job.backend for job in jobs} or {backend}):
        ok, why = backend_class(name).availability(options)
        if not ok:
            raise BackendUnavailable(f"backend {name!r} cannot run here: {why}")
    layout = RunLayout.create(root)
    layout.empty_trash()
    _snapshot_manifest(manifest, layout, backend)
    return manifest, layout, jobs


def split_jobs(jobs: Iterable[Job], ledger: JobLedger, *, retry_failed: bool, force: bool) -> JobPlan:
    """Decide which jobs run: not yet published with this key, failed and retried, or forced."""
    plan = JobPlan(todo=[], finished=[])
    for job in jobs:
        status = None if force else ledger.status(job.pair_id, job.key)
        if status is None or (status == "failed" and retry_failed):
            plan.todo.append(job)
        else:
            plan.finished.append(job)
    return plan


def run_manifest(
    manifest_path: Path,
    out_dir: Path | None = None,
    *,
    backend: str = DEFAULT_BACKEND,
    options: BackendOptions | None = None,
    retry_failed: bool = False,
    force: bool = False,
    show_progress: bool = True,
    workers: int = 1,
    gpus: list[str] | None = None,
    shard: tuple[int, int] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    lease_ttl_s: float = DEFAULT_TTL_S,
    preview: bool = True,
) -> RunSummary:
    """Run every job of a manifest (or of one shard of it) that is not already done; resumable after any
    interruption, and safe to run as several processes on one output root."""
    t0 = time.time()
    options = options or BackendOptions()
    manifest, layout, jobs = prepare_run(manifest_path, out_dir, backend, options)
    if shard is not None:
        index, count = shard
        jobs = [job for job in jobs if shard_of(job.pair_id, count) == index]
    ledger = JobLedger(layout).load()
    plan = split_jobs(jobs, ledger, retry_failed=retry_failed, force=force)
    # Keyframes of video rows: one forward decode per source, before its jobs run (media/keyframe_cache.py).
    fill_for_pairs(keyframe_cache_for(layout.root, options.extra), [job.pair for job in plan.todo])
    records: dict[str, dict] = {}
    summary = RunSummary(out=layout.root, total=len(jobs), skipped=len(plan.finished))
    settings = ClaimSettings(since=time.time(), lease_ttl_s=lease_ttl_s, fresh_only=force, preview=preview)
    with _progress(len(jobs), len(plan.finished), show_progress) as advance:

        def on_record(record: dict) -> None:
            records[record["pair_id"]] = record
            summary.ran += 1
            advance(record)

        if not plan.todo:
            pass  # all finished: nothing to start (no Ray cluster, no worker processes)
        elif executor == "ray":
            from semfi_batch.run.ray_executor import run_on_ray

            run_on_ray(plan.todo, layout, options, settings, on_record, address=ray_address, workers=workers)
        elif executor != "local":
            raise SemfiError(f"unknown executor {executor!r}; use local or ray")
        elif workers > 1:
            _run_processes(plan.todo, layout, options, settings, on_record, workers, gpus)
        else:
            work_through(plan.todo, layout, options, settings, on_record)
    for job in plan.finished:
        record = ledger.record(job.pair_id, job.key)
        if record is not None:
            records[job.pair_id] = record
    # Jobs another process finished while we waited count with their records.
    for job in plan.todo:
        if job.pair_id not in records:
            record = finished_record(layout, job, settings)
            if record is not None:
                records[job.pair_id] = record
    for record in records.values():
        if record["status"] == "done":
            summary.done += 1
        else:
            summary.failed += 1
            summary.failures.append((record["pair_id"], record.get("error") or ""))
    # Regenerated jobs that finished go back to undecided: their new frames need a look.
    mark_regenerated(layout.root, [pid for pid, record in records.items() if record["status"] == "done"])
    name = "metrics.parquet" if shard is None else f"metrics.shard-{shard[0]}-of-{shard[1]}.parquet"
    write_metrics(layout.root / name, manifest, records)
    summary.metrics_path = layout.root / name
    summary.wall_s = time.time() - t0
    return summary


def _run_processes(jobs, layout, options, settings, on_record, workers, gpus) -> None:
    """N worker processes (spawned, so each loads its own model), pinned round-robin to `gpus`."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    for i in range(workers):
        gpu = gpus[i % len(gpus)] if gpus else None
        proc = ctx.Process(
            target=worker_process,
            args=(jobs, layout.root, options, settings, queue, gpu),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
    while any(p.is_alive() for p in procs) or not queue.empty():
        try:
            record = queue.get(timeout=0.2)
        except Empty:
            continue
        on_record(record)
    dead = [p.exitcode for p in procs if p.exitcode]
    if dead:
        raise SemfiError(f"{len(dead)} worker process(es) exited with status {dead}; re-run to finish")


def write_metrics(path: Path, manifest: Manifest, records: dict[str, dict]) -> Path:
    """metrics.parquet: one row per pair that has a record, in manifest order, with the user's columns."""
    rows = []
    for pair in manifest.pairs:
        record = records.get(pair.pair_id)
        if record is None:
            continue
        row = {c: record.get(c) for c in METRIC_COLUMNS}
        row["notes"] = json.dumps(record.get("notes") or {}, sort_keys=True)
        for col in manifest.extra_columns:
            row[col] = pair.extras.get(col)
        rows.append(row)
    table = pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in METRIC_COLUMNS})
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return path


def _snapshot_manifest(manifest: Manifest, layout: RunLayout, backend: str) -> None:
    """Keep a copy of the manifest and the run's settings beside its outputs (splice and report read them)."""
    target = layout.root / "manifest.parquet"
    if manifest.path.suffix.lower() == ".csv":  # CSV manifests are kept as Parquet: splice and report read that
        from semfi_batch.manifest import read_table, write_manifest

        write_manifest(read_table(manifest.path), target)
    elif manifest.path.resolve() != target.resolve():
        tmp = target.with_name(".manifest.parquet.tmp")
        shutil.copyfile(manifest.path, tmp)
        tmp.replace(target)
    info = {"manifest": str(manifest.path.resolve()), "backend": backend, "schema_version": 1}
    tmp = layout.root / ".run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(layout.root / "run.json")


class _progress:
    """A progress bar (terminal) or one line per job (logs), counting done/failed/skipped with an ETA."""

    def __init__(self, total: int, skipped: int, enabled: bool):
        self.total, self.skipped, self.enabled = total, skipped, enabled
        self.done = self.failed = 0
        self.console = Console(stderr=True, highlight=False)
        self.live = enabled and self.console.is_terminal
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[dict], None]:
        if self.live:
            self.bar = Progress(
                TextColumn("[bold]run[/bold]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"), TimeRemainingColumn(), console=self.console,
            )  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("run", total=self.total, completed=self.skipped, counts=self._counts())
        elif self.enabled and self.skipped:
            self.console.print(f"skipping {self.skipped} finished job(s)")
        return self.advance

    def advance(self, record: dict) -> None:
        if record["status"] == "done":
            self.done += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, counts=self._counts())
        elif self.enabled:
            n = self.skipped + self.done + self.failed
            err = f": {record.get('error')}" if record["status"] != "done" else ""
            self.console.print(
                f"[{n}/{self.total}] {record['pair_id']} {record['status']} ({record['wall_s']:.2f} s){err}",
                markup=False,
            )

    def _counts(self) -> str:
        return f"done {self.done}  failed {self.failed}  skipped {self.skipped}"

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
        sys.stderr.flush()
