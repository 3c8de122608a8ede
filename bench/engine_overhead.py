"""Benchmark: what the batch engine itself costs per job, locally and on Ray, and how fast a resume scan is.

- Per-job overhead: a manifest of N image pairs (16x16 px, 1 in-between) run with the `blend` backend, whose
  own work is microseconds, so the wall time per job is the engine's: reading keyframes, writing the PNGs
  and record (fsynced), publishing the folder, the ledger, leases. Printed with and without the preview clip
  (one ffmpeg process per job), for the local engine and for Ray (local cluster). Target: < 20 ms per job.
- Resume scan: a 100,000-row manifest with 99,000 jobs already published (records and ledger made with the
  engine's own functions); the time from `run` start until it knows the 1,000 jobs left. Target: < 2 s.

    .venv/bin/python bench/engine_overhead.py [--rows 10000] [--scan-rows 100000] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from semfi_batch.backends import BackendOptions
from semfi_batch.manifest import write_manifest
from semfi_batch.media.frames import write_png
from semfi_batch.run.engine import prepare_run, run_manifest, split_jobs
from semfi_batch.run.ledger import RECORD_NAME, JobLedger


def image_manifest(folder: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_png(folder / name, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    data = [
        {"pair_id": f"p{i:06d}", "start_image": "a.png", "end_image": "b.png", "gap_frames": 1} for i in range(rows)
    ]
    return write_manifest(data, folder / f"m{rows}.parquet")


def per_job(manifest: Path, out: Path, **kw) -> float:
    t0 = time.perf_counter()
    summary = run_manifest(manifest, out, backend="blend", show_progress=False, **kw)
    assert summary.done == summary.total, summary.failures[:3]
    return (time.perf_counter() - t0) / summary.total * 1000


def resume_scan(folder: Path, rows: int, done: int) -> tuple[float, int]:
    manifest = image_manifest(folder, rows)
    out = folder / "scan"
    _, layout, jobs = prepare_run(manifest, out, "blend", BackendOptions())
    ledger = JobLedger(layout)
    # A done record lists its outputs (here none: the scan never opens them; it checks each folder's fingerprint).
    template = {"status": "done", "error": None, "backend": "blend", "frames": 0, "outputs": {},
                "finished_ts": time.time()}  # fmt: skip
    jobs_dir = layout.jobs
    for job in jobs[:done]:  # publish `done` jobs as the engine does (folder with its record, then the ledger),
        # without the engine's fsyncs and work folders: setting up 99,000 jobs is not what is measured.
        target = jobs_dir / job.pair_id
        (target / "frames").mkdir(parents=True)
        record = {**template, "pair_id": job.pair_id, "key": job.key}
        (target / RECORD_NAME).write_text(json.dumps(record))
        ledger.append(record, target)
    t0 = time.perf_counter()
    _, layout, jobs = prepare_run(manifest, out, "blend", BackendOptions())
    plan = split_jobs(jobs, JobLedger(layout).load(), retry_failed=False, force=False)
    return time.perf_counter() - t0, len(plan.todo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--scan-rows", type=int, default=100_000)
    parser.add_argument("--preview-rows", type=int, default=500)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--scan-only", action="store_true", help="only the resume-scan figure")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="semfi-bench-"))
    results: list[tuple[str, float]] = []
    try:
        if not args.scan_only:
            manifest = image_manifest(tmp, args.rows)
            results.append((f"local, no preview ({args.rows} jobs)", per_job(manifest, tmp / "local", preview=False)))
            # The preview clip costs one ffmpeg process per job: measured on fewer jobs.
            small = image_manifest(tmp, min(args.rows, args.preview_rows))
            label = f"local, with preview clip ({min(args.rows, args.preview_rows)} jobs)"
            results.append((label, per_job(small, tmp / "local_preview")))
            if not args.no_ray:
                ray_ms = per_job(manifest, tmp / "ray", executor="ray", preview=False)
                results.append((f"ray (local cluster, 2 CPUs), no preview ({args.rows} jobs)", ray_ms))
        scan_s, left = resume_scan(tmp, args.scan_rows, args.scan_rows - args.scan_rows // 100)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if results:
        print("per-job overhead, blend backend on 16x16 px pairs (its own work is microseconds):")
    for name, ms in results:
        verdict = "MET" if ms < 20 else "NOT MET"
        print(f"  {name:58} {ms:8.2f} ms/job   (target < 20 ms: {verdict})")
    base = results[0][1] if results else 0
    for name, ms in results[1:]:
        print(f"  ratio {name} / local, no preview: {ms / base:.2f}x")
    verdict = "MET" if scan_s < 2 else "NOT MET"
    print(f"resume scan, {args.scan_rows} rows with {args.scan_rows - left} done: {scan_s:.2f} s, "
          f"{left} jobs left (target < 2 s: {verdict})")  # fmt: skip


if __name__ == "__main__":
    main()
