"""`--executor ray`: jobs streamed to Ray actors, one per GPU (GPU backends) or per CPU slot (CPU backends),
each constructing its backend once. The driver holds the jobs' leases, so Ray runs and local runs on the
same output root never duplicate work, appends each record to the ledger as it arrives, and sends the job
of an actor that died to another actor."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from semfi_batch.backends import BackendOptions
from semfi_batch.errors import BackendUnavailable, SemfiError
from semfi_batch.run.attempt import Attempt, execute_job
from semfi_batch.run.job import Job, LeaseLost
from semfi_batch.run.layout import RunLayout
from semfi_batch.run.lease import LeaseManager
from semfi_batch.run.ledger import JobLedger
from semfi_batch.run.notices import notice
from semfi_batch.run.worker import POLL_S, ClaimSettings, finished_record, log_event, publish_held

# Backends that want a whole GPU per actor.
GPU_BACKENDS = {"semfi", "wan-flf2v"}
MAX_ACTOR_RESTARTS = 3


class JobActor:
    """Holds one backend (loaded once) and runs jobs on it, writing outputs to the shared output root."""

    def __init__(self, backend: str, options: BackendOptions, root: str):
        from semfi_batch.backends import backend_class

        if backend not in GPU_BACKENDS:
            import cv2

            # One CPU per actor, as Ray reserved it and as a local worker runs (run/worker.py): OpenCV's own
            # threads would only contend with the other actors.
            cv2.setNumThreads(1)
        self.backend = backend_class(backend)(options)
        self.layout = RunLayout(Path(root))

    def run(self, job: Job, preview: bool, token: str) -> Attempt:
        """One attempt, staged in its own folder; the driver publishes it while it still holds the lease."""
        return execute_job(job, self.backend, self.layout, preview=preview, token=token)


def run_on_ray(
    jobs: list[Job],
    layout: RunLayout,
    options: BackendOptions,
    settings: ClaimSettings,
    on_record: Callable[[dict], None],
    *,
    address: str | None,
    workers: int,
) -> None:
    """Run `jobs` on a Ray cluster (started locally when `address` is None)."""
    try:
        import ray
    except ImportError:
        raise BackendUnavailable("--executor ray needs Ray: pip install 'semfi-batch[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        groups: dict[str, list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.backend, []).append(job)
        ledger = JobLedger(layout)
        with LeaseManager(layout.leases, ttl_s=settings.lease_ttl_s) as leases:
            for name, group in groups.items():
                _run_group(ray, name, group, layout, options, settings, workers, leases, ledger, on_record)
    finally:
        if started_here:
            ray.shutdown()


def _run_group(ray, name, jobs, layout, options, settings, workers, leases, ledger, on_record) -> None:
    resources = ray.cluster_resources()
    if name in GPU_BACKENDS:
        slots = int(resources.get("GPU", 0))
        if slots == 0:
            raise BackendUnavailable(f"backend {name!r} needs GPUs and the Ray cluster has none")
        actor_cls = ray.remote(num_gpus=1)(JobActor)
    else:
        slots = int(resources.get("CPU", 1))
        actor_cls = ray.remote(num_cpus=1)(JobActor)
    count = max(1, min(slots, workers if workers > 1 else slots, len(jobs)))
    actors = [actor_cls.remote(name, options, str(layout.root)) for _ in range(count)]
    restarts = 0
    pending = list(jobs)
    in_flight: dict = {}  # ObjectRef -> (job, actor)
    idle = list(actors) * 2  # two jobs queued per actor keeps each busy while the driver writes records
    while pending or in_flight:
        while idle and pending:
            job = pending.pop(0)
            if finished_record(layout, job, settings) is not None:
                continue
            token = leases.try_claim(job.pair_id)
            if token is None:
                pending.append(job)  # held by another worker: try again later
                if len(pending) == 1 and not in_flight:
                    time.sleep(POLL_S)
                continue
            actor = idle.pop(0)
            log_event(layout, leases.worker_id, job.pair_id, "start")
            in_flight[actor.run.remote(job, settings.preview, token)] = (job, actor, token)
        if not in_flight:
            continue
        done, _ = ray.wait(list(in_flight), num_returns=1)
        ref = done[0]
        job, actor, token = in_flight.pop(ref)
        try:
            attempt = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            # What stops the run on an actor (a full disk, an interruption) stops the driver as it is, in the
            # same words as a local run's, not as Ray's traceback of the actor.
            cause = getattr(exc, "cause", None)
            if isinstance(cause, SemfiError):
                leases.release(job.pair_id)
                raise cause from None
            raise
        except ray.exceptions.RayActorError:
            # The actor died (OOM, node lost, killed): its job goes to another actor, and a new actor replaces it.
            leases.release(job.pair_id)
            pending.insert(0, job)
            restarts += 1
            if restarts > MAX_ACTOR_RESTARTS * count:
                raise SemfiError(f"Ray actors for backend {name!r} keep dying ({restarts} times); giving up") from None
            idle = [a for a in idle if a is not actor]
            for key, (other_job, other_actor, _) in list(in_flight.items()):
                if other_actor is actor:
                    in_flight.pop(key)
                    leases.release(other_job.pair_id)
                    pending.insert(0, other_job)
            replacement = actor_cls.remote(name, options, str(layout.root))
            idle.extend([replacement, replacement])
            continue
        idle.append(actor)
        try:
            record = publish_held(layout, attempt, leases, token, settings)
        except LeaseLost:
            notice(f"{job.pair_id}: the driver lost its lease (stalled past {leases.ttl_s:g} s); attempt discarded")
            leases.release(job.pair_id)
            pending.append(job)
            continue
        ledger.append(record, layout.job_dir(job.pair_id))
        log_event(layout, leases.worker_id, job.pair_id, record["status"])
        leases.release(job.pair_id)
        on_record(record)
