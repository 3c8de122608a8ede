"""The claim loop every worker runs (one `run` process, each of `--workers N`, each of several `run`
commands on shared storage): take a job's lease, run it unless someone finished it, publish, release.
A worker goes on until every job is finished, waiting on jobs that other live workers hold and taking
over those whose lease expired."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from semfi_batch.backends import Backend, BackendOptions, backend_class
from semfi_batch.run.job import Job, execute_job
from semfi_batch.run.layout import RunLayout
from semfi_batch.run.lease import DEFAULT_TTL_S, LeaseManager
from semfi_batch.run.ledger import JobLedger, read_record

POLL_S = 0.25


@dataclass(frozen=True)
class ClaimSettings:
    """What every worker of one run (process, Ray driver) shares about claiming and running jobs."""

    since: float  # when the run started: records written before it come from earlier runs
    lease_ttl_s: float = DEFAULT_TTL_S
    fresh_only: bool = False  # --force: only records written during this run count as finished
    preview: bool = True


def finished_record(layout: RunLayout, job: Job, settings: ClaimSettings) -> dict | None:
    """The job's published record if it is done with this key, or failed during this run. With
    `fresh_only` (--force) only records written during this run count."""
    record = read_record(layout.jobs / job.pair_id)
    if record is None or record.get("key") != job.key:
        return None
    fresh = float(record.get("finished_ts", 0)) >= settings.since
    if fresh or (record.get("status") == "done" and not settings.fresh_only):
        return record
    return None


def log_event(layout: RunLayout, worker: str, pair_id: str, event: str) -> None:
    """Append one line to events.jsonl (an audit trail of who ran what, when)."""
    line = json.dumps({"t": round(time.time(), 4), "worker": worker, "pair_id": pair_id, "event": event})
    fd = os.open(layout.root / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def work_through(
    jobs: list[Job],
    layout: RunLayout,
    options: BackendOptions,
    settings: ClaimSettings,
    on_record: Callable[[dict], None],
) -> None:
    """Run `jobs` (in order, grouped by backend) until each one is finished by this or another worker."""
    ledger = JobLedger(layout)
    backends: dict[str, Backend] = {}
    pending = _ordered(jobs, backends, options)
    with LeaseManager(layout.root / "leases", ttl_s=settings.lease_ttl_s) as leases:
        try:
            while pending:
                waiting = []
                for job in pending:
                    if finished_record(layout, job, settings) is not None:
                        continue
                    if not leases.try_claim(job.pair_id):
                        waiting.append(job)
                        continue
                    try:
                        if finished_record(layout, job, settings) is not None:
                            continue  # finished by another worker just before we claimed it
                        log_event(layout, leases.worker_id, job.pair_id, "start")
                        backend = _backend(job.backend, backends, options)
                        record = execute_job(job, backend, layout, preview=settings.preview)
                        ledger.append(record, layout.job_dir(job.pair_id))
                        log_event(layout, leases.worker_id, job.pair_id, record["status"])
                    finally:
                        leases.release(job.pair_id)
                    on_record(record)
                pending = waiting
                if pending:
                    time.sleep(POLL_S)
        finally:
            for backend in backends.values():
                backend.close()


def _backend(name: str, backends: dict[str, Backend], options: BackendOptions) -> Backend:
    if name not in backends:
        backends[name] = backend_class(name)(options)  # the model loads once per worker
    return backends[name]


def _ordered(jobs: list[Job], backends: dict[str, Backend], options: BackendOptions) -> list[Job]:
    """Jobs grouped by backend, each group in its backend's preferred order (e.g. by LoRA bucket)."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.backend, []).append(job)
    ordered: list[Job] = []
    for name, group in groups.items():
        if len(group) > 1 and backend_class(name).order_key is not Backend.order_key:
            backend = _backend(name, backends, options)
            group.sort(key=lambda j: backend.order_key(j.pair.gap_frames))
        ordered.extend(group)
    return ordered


def worker_process(
    jobs: list[Job], root: Path, options: BackendOptions, settings: ClaimSettings, queue, gpu: str | None
) -> None:
    """Entry point of a `--workers N` child process: pin the GPU, then run the claim loop."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    work_through(jobs, RunLayout(root), options, settings, queue.put)
