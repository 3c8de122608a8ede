"""The claim loop every worker runs (one `run` process, each of `--workers N`, each of several `run`
commands on shared storage): take a job's lease, run it unless someone finished it, publish, release.
A worker goes on until every job is finished, waiting on jobs that other live workers hold and taking
over those whose lease expired."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from semfi_batch.backends import Backend, BackendOptions, backend_class
from semfi_batch.errors import DiskFull, RunInterrupted
from semfi_batch.media.keyframe_cache import keyframe_cache_for
from semfi_batch.run.attempt import StartedAttempt, start_job
from semfi_batch.run.frame_io import RECENT_IMAGES
from semfi_batch.run.job import Job, LeaseLost, key_files, publish_attempt
from semfi_batch.run.layout import RunLayout, append_line
from semfi_batch.run.lease import DEFAULT_TTL_S, LeaseManager, new_worker_id
from semfi_batch.run.ledger import JobLedger, check_job_folder, read_record
from semfi_batch.run.notices import notice

POLL_S = 0.25
# Jobs that other workers hold are looked at again after FIRST_POLL_S, then twice as long each time up to
# POLL_S: at a run's end a worker waits for the others' last jobs (tens of ms each with flow) and exits as
# soon as they are published, not up to POLL_S later (bench/whole_run.py).
FIRST_POLL_S = 0.01
# A job whose frames took less than this is published after the next one's frames are made (its writes, or
# a CPU backend's fsyncs, overlapping them); slower ones (semfi, wan: minutes a job) are published at once:
# their writes are a small part, and progress stays current.
OVERLAP_MAX_BACKEND_S = 5.0
FATAL_EXIT = 3  # a worker that stopped for a reason the whole run stops for (it sent the message first)
# Fault injection for tests/faults: "<point>:<pair_id>" makes the worker stop itself (SIGSTOP) at that point,
# so a test can pause it past its lease, deterministically. Points: running (job claimed, attempt not yet
# started), publishing (attempt complete, not yet published).
FAULT_ENV = "SEMFI_FAULT_STOP"


@dataclass(frozen=True)
class ClaimSettings:
    """What every worker of one run (process, Ray driver) shares about claiming and running jobs."""

    since: float  # when the run started: records written before it come from earlier runs
    lease_ttl_s: float = DEFAULT_TTL_S
    fresh_only: bool = False  # --force: only records written during this run count as finished
    preview: bool = False
    # Each worker has a hardware thread to spare beside its own (the run's CPUs number at least twice its workers:
    # hyper-threads, or fewer workers than cores): a CPU backend's worker then writes its frames and decodes the
    # next job's keys on a second thread while its backend computes, as a model backend's process does.
    spare_thread: bool = False
    run_tag: str = field(default_factory=lambda: os.urandom(3).hex())  # shared by the workers of one run


def finished_record(layout: RunLayout, job: Job, settings: ClaimSettings) -> dict | None:
    """The job's published record if it is done with this key and its outputs verify, or failed during this
    run. With `fresh_only` (--force) only records written during this run count."""
    job_dir = layout.jobs / job.pair_id
    record = read_record(job_dir)
    if record is None or record.get("key") != job.key:
        return None
    fresh = float(record.get("finished_ts", 0) or 0) >= settings.since
    if record.get("status") == "done" and (fresh or not settings.fresh_only):
        verified, _ = check_job_folder(job_dir, job.key)
        return verified
    return record if fresh else None


def publish_held(layout: RunLayout, attempt, leases: LeaseManager, token: str, settings: ClaimSettings) -> dict:
    """Publish `attempt` fenced by this claim (`token` still in the job's lease), the first complete attempt
    winning (with --force only those of this run count). Raises LeaseLost."""
    pair_id = attempt.job.pair_id
    since = settings.since if settings.fresh_only else 0.0
    return publish_attempt(layout, attempt, lambda: leases.holds(pair_id, token), since=since)


def log_event(layout: RunLayout, worker: str, pair_id: str, event: str) -> None:
    """Append one line to events.jsonl (an audit trail of who ran what, when); a line that cannot be written
    is reported once and the run goes on."""
    line = json.dumps({"t": round(time.time(), 4), "worker": worker, "pair_id": pair_id, "event": event})
    try:
        append_line(layout.events, (line + "\n").encode())
    except OSError as exc:
        notice(f"{layout.events}: cannot append ({exc.strerror}); the audit trail misses lines", once_key="events")


def work_through(
    jobs: list[Job],
    layout: RunLayout,
    options: BackendOptions,
    settings: ClaimSettings,
    on_record: Callable[[dict], None],
    part: tuple[int, int] = (0, 1),
) -> None:
    """Run `jobs` (in order, grouped by backend) until each one is finished by this or another worker. An
    attempt that lost its lease is discarded and the job waits for its new holder (or is claimed again).
    Worker i of n (`part`) starts at the i-th n-th of the list and goes round: each worker runs a stretch
    of consecutive rows, which share keyframes (decoded once, RecentImages), and meets the others only where
    their stretches end. With a model backend the next job's keys are decoded ahead. A job whose frames came
    quickly (OVERLAP_MAX_BACKEND_S) is published after the next one's frames are made: its PNG writes (a
    model backend's) or its fsyncs (a CPU backend's) go on meanwhile (run/attempt.py). An interruption still
    publishes such a job (its frames are complete) unless it comes while its writes are being waited for; a
    full disk drops it whole."""
    keep_freed_memory()
    ledger = JobLedger(layout)
    backends: dict[str, Backend] = {}
    pending = _ordered(jobs, backends, options)
    first = len(pending) * part[0] // max(1, part[1])
    pending = pending[first:] + pending[:first]
    worker_id = new_worker_id(settings.run_tag)
    with LeaseManager(layout.leases, worker_id, ttl_s=settings.lease_ttl_s) as leases:
        # Attempts not yet published, oldest first: (job, token, attempt). At most one stays while the next job
        # runs (a quick model backend's, whose writes go on meanwhile).
        deferred: list[tuple[Job, str, StartedAttempt]] = []

        def settle(waiting: list[Job]) -> None:
            """Finish and publish the oldest deferred attempt, then release its lease."""
            job, token, started = deferred[0]
            try:
                attempt = started.finish()
                _fault_point(layout, "publishing", job.pair_id)
                try:
                    record = publish_held(layout, attempt, leases, token, settings)
                except LeaseLost:
                    holder = leases.lost.get(job.pair_id) or "another worker"
                    notice(
                        f"{job.pair_id}: this worker lost its lease to {holder} (paused or stalled past the "
                        f"{leases.ttl_s:g} s lease); its attempt was discarded, not published"
                    )
                    log_event(layout, leases.worker_id, job.pair_id, "lost")
                    waiting.append(job)
                    return
                ledger.append(record, layout.job_dir(job.pair_id))
                log_event(layout, leases.worker_id, job.pair_id, record["status"])
            finally:
                deferred.pop(0)
                leases.release(job.pair_id)
            on_record(record)

        poll_s = FIRST_POLL_S
        try:
            while pending:
                waiting: list[Job] = []
                for i, job in enumerate(pending):
                    if finished_record(layout, job, settings) is not None:
                        continue
                    token = leases.try_claim(job.pair_id)
                    if token is None:
                        waiting.append(job)
                        continue
                    started = None
                    try:
                        if finished_record(layout, job, settings) is not None:
                            leases.release(job.pair_id)
                            continue  # finished by another worker just before we claimed it
                        log_event(layout, leases.worker_id, job.pair_id, "start")
                        backend = _backend(job.backend, backends, options)
                        # a model backend (alone in its process), or a CPU backend's worker with a thread to spare
                        spare_cores = not backend.scales_with_workers or settings.spare_thread
                        if spare_cores and i + 1 < len(pending):
                            cache = keyframe_cache_for(layout.root, options.extra)
                            RECENT_IMAGES.read_ahead(key_files(pending[i + 1].pair, cache))
                        _fault_point(layout, "running", job.pair_id)
                        preview, spare = settings.preview, settings.spare_thread
                        started = start_job(job, backend, layout, preview=preview, token=token, spare_thread=spare)
                        deferred.append((job, token, started))
                    except BaseException:
                        if not deferred or deferred[-1][2] is not started:  # not handed over to `deferred`
                            if started is not None:
                                started.abandon()
                            leases.release(job.pair_id)
                        raise
                    overlap = started.backend_s is not None and started.backend_s < OVERLAP_MAX_BACKEND_S
                    while len(deferred) > (1 if overlap else 0):
                        settle(waiting)  # the previous job, whose writes went on while this one's frames were made
                while deferred:
                    settle(waiting)
                pending = waiting
                if pending:
                    time.sleep(poll_s)
                    poll_s = min(POLL_S, 2 * poll_s)
        except RunInterrupted:
            while deferred:  # complete work (its frames made) is published, not thrown away
                try:
                    settle([])
                except BaseException:  # noqa: BLE001 - what is left is dropped below; the interruption stands
                    break
            raise
        finally:
            for job, _, started in deferred:  # stopping for a full disk (or an error): dropped whole
                started.abandon()
                leases.release(job.pair_id)
            for backend in backends.values():
                with contextlib.suppress(Exception):
                    backend.close()


def _fault_point(layout: RunLayout, point: str, pair_id: str) -> None:
    """Test hook: the first worker of an output root to reach `point` for `pair_id` stops itself."""
    if os.environ.get(FAULT_ENV) != f"{point}:{pair_id}":
        return
    try:
        os.close(os.open(layout.root / "work" / f".fault-{point}-{pair_id}", os.O_CREAT | os.O_EXCL, 0o644))
    except OSError:
        return
    os.kill(os.getpid(), signal.SIGSTOP)


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


def raise_on_signals() -> dict:
    """SIGINT/SIGTERM raise RunInterrupted (once) in the main thread; returns the previous handlers."""
    fired = []

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        if not fired:
            fired.append(signum)
            raise RunInterrupted(signum)

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_signals(previous: dict) -> None:
    """Put back the handlers `raise_on_signals` replaced."""
    for sig, old in previous.items():
        signal.signal(sig, old)


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this worker when its parent dies (even by SIGKILL): no orphans."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# glibc's malloc (mallopt): blocks over this get a mapping of their own, and freed memory is returned to the
# system only beyond this much at the top of the heap.
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> None:
    """Let freed frames be reused instead of returned to the system. By default glibc gives each block of a
    few MB a mapping of its own, or trims the heap once twice the last such block is free: every job's
    keys, frames and PNG buffers then come back as fresh pages, each 4 KiB faulted in on first touch, about
    40 % of a 720p PNG encode or decode on this project's virtual machine. Blocks over 32 MB (4K
    working arrays) are still mapped on their own, and up to 256 MB freed stays for the next job. Elsewhere
    than glibc, nothing is changed."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, _MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, _TRIM_THRESHOLD)  # M_TRIM_THRESHOLD


def worker_process(
    jobs: list[Job],
    root: Path,
    options: BackendOptions,
    settings: ClaimSettings,
    conn,
    gpu: str | None,
    part: tuple[int, int] = (0, 1),
) -> None:
    """Entry point of a `--workers N` child process: its own process group (so the parent can stop it and its
    ffmpeg children at once), dies with its parent, pins the GPU, then runs the claim loop, sending each
    record through its own pipe (no lock shared with other workers)."""
    parent = os.getppid()
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _die_with_parent()
    raise_on_signals()
    if os.getppid() != parent:  # the parent died before PDEATHSIG was set
        raise SystemExit(143)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    import cv2

    cv2.setNumThreads(1)  # one core per worker: OpenCV's own threads would only contend with the other workers
    try:
        work_through(jobs, RunLayout(root), options, settings, conn.send, part)
    except RunInterrupted as exc:
        raise SystemExit(exc.exit_code) from None
    except DiskFull as exc:  # the whole run stops for it: the parent prints this message, not "worker died"
        with contextlib.suppress(OSError, ValueError):
            conn.send({"fatal": str(exc)})
        raise SystemExit(FATAL_EXIT) from None
    finally:
        with contextlib.suppress(OSError):
            conn.close()
