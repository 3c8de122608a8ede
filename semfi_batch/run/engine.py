"""The local batch engine: validate, plan, skip what is done, run the rest, write metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from semfi_batch.atomic_write import file_error, write_atomic
from semfi_batch.backends import DEFAULT_BACKEND, BackendOptions, backend_class
from semfi_batch.backends.routing import deciding_files, refuse_cut_morphs
from semfi_batch.errors import BackendUnavailable, DiskFull, RunInterrupted, RunSettingsMismatch, SemfiError
from semfi_batch.manifest import Manifest, load_manifest
from semfi_batch.media.keyframe_cache import fill_for_pairs, keyframe_cache_for
from semfi_batch.media.png import png_level
from semfi_batch.plan import shard_of
from semfi_batch.review.decisions import DECISIONS_NAME, mark_regenerated, regeneration_overrides
from semfi_batch.run.frame_io import usable_cpus, writer_threads
from semfi_batch.run.identity import stat_identity
from semfi_batch.run.inputs import CACHE_NAME, InputHashes
from semfi_batch.run.job import ENGINE_VERSION, Job, JobPlanner
from semfi_batch.run.layout import RunLayout
from semfi_batch.run.lease import LeaseManager, default_ttl
from semfi_batch.run.ledger import JobLedger
from semfi_batch.run.notices import notice
from semfi_batch.run.worker import (
    FATAL_EXIT,
    ClaimSettings,
    finished_record,
    raise_on_signals,
    restore_signals,
    work_through,
    worker_process,
)

METRIC_COLUMNS = (
    "pair_id", "status", "error", "backend", "wall_s", "frames", "s_per_frame", "peak_rss_mb", "peak_gpu_mb",
    "mode", "source", "start_frame", "end_frame", "start_image", "end_image", "gap_frames", "width", "height",
    "seed", "requested_backend",
)  # fmt: skip
STOP_GRACE_S = 15.0  # how long stopped workers get to abandon their job and release its lease


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
    dead_workers: list[str] = field(default_factory=list)  # "worker 2 (pid 123) was killed by SIGKILL"
    interrupted: RunInterrupted | None = None  # SIGINT/SIGTERM stopped the run
    # What the finished stamp (run/finished.py) is made of: the jobs, the identities of the files the run read
    # as it read them (manifest, review decisions, inputs: before any job ran), the backends asked for.
    job_keys: dict[str, str] = field(default_factory=dict)  # pair_id -> the job's key
    planned_files: dict[str, tuple | None] = field(default_factory=dict)
    # The identities of the files that decide the jobs' backends and keys (routing.deciding_files); None when
    # more than files decides them, and no stamp is written.
    deciding_files: dict[str, tuple | None] | None = None

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
    manifest_path: Path,
    out_dir: Path | None,
    backend: str,
    options: BackendOptions,
    *,
    preview: bool = False,
    lease_ttl_s: float | None = None,
    command_options: list[str] | None = None,
) -> tuple[Manifest, RunLayout, list[Job]]:
    """Validate the manifest, check every backend it needs can run here and that the output root was made with
    the same settings, create it, remove what killed runs left there, and plan the jobs."""
    png_level()  # a bad SEMFI_PNG_LEVEL or SEMFI_WRITER_THREADS stops the run here, not each of its jobs
    writer_threads()
    manifest = load_manifest(manifest_path)
    root = Path(out_dir) if out_dir else default_out_dir(manifest_path)
    cache = root.expanduser().absolute() / CACHE_NAME
    hashes = InputHashes(cache if root.is_dir() else None)
    # Regenerations apply to the rows they were made for, as this manifest gives them (not the root's old copy).
    planner = JobPlanner(backend, options, hashes, overrides=regeneration_overrides(root, manifest.pairs))
    jobs = [planner.plan(pair) for pair in manifest.pairs]
    refuse_cut_morphs(jobs, options)
    for name in sorted({job.backend for job in jobs} or {backend}):
        ok, why = backend_class(name).availability(options)
        if not ok:
            raise BackendUnavailable(f"backend {name!r} cannot run here: {why}")
    layout = RunLayout.create(root)
    settings = run_settings(backend, planner, options, preview, command_options)
    _claim_root(layout, manifest, settings)
    hashes.save(layout.root / CACHE_NAME)
    leases = LeaseManager(layout.leases, ttl_s=lease_ttl_s)
    layout.remove_leftovers(leases.attempt_is_live, leases.ttl_s)
    layout.end_cut_lines()
    return manifest, layout, jobs


def run_settings(
    backend: str, planner: JobPlanner, options: BackendOptions, preview: bool, command_options: list[str] | None = None
) -> dict:
    """The settings an output root keeps in run.json (one set per root). `command_options`: the options of the
    latest `run` command that choose backends and whether a job may run (--allow-morph, --semantic-gap, the
    model files...) as its words, for the command review gives to run again (review/cards.rerun_command);
    they are kept, not compared."""
    return {"engine_version": ENGINE_VERSION, "backend": backend, "key_settings": planner.key_settings(),
            "preview": preview, "deinterlace": bool(options.extra.get("deinterlace")),
            "options": list(command_options or [])}  # fmt: skip


def split_jobs(jobs: Iterable[Job], ledger: JobLedger, *, retry_failed: bool, force: bool) -> JobPlan:
    """Decide which jobs run: not yet published with this key (or published with outputs missing or altered),
    failed and retried, or forced."""
    plan = JobPlan(todo=[], finished=[])
    for job in jobs:
        status = None if force else ledger.status(job.pair_id, job.key)
        if status is None or (status == "failed" and retry_failed):
            plan.todo.append(job)
        else:
            plan.finished.append(job)
    if ledger.rerun:
        first = ", ".join(f"jobs/{p}: {why}" for p, why in ledger.rerun[:3])
        notice(f"{len(ledger.rerun)} finished job(s) run again: their outputs no longer match their records ({first})")
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
    workers: int | str = 1,
    gpus: list[str] | None = None,
    shard: tuple[int, int] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    lease_ttl_s: float | None = None,
    preview: bool = False,
    command_options: list[str] | None = None,
) -> RunSummary:
    """Run every job of a manifest (or of one shard of it) that is not already done; resumable after any
    interruption, and safe to run as several processes on one output root. SIGINT/SIGTERM stop it cleanly:
    the summary then says so (`interrupted`) after metrics for what is done were written."""
    t0 = time.time()
    options = options or BackendOptions()
    lease_ttl_s = lease_ttl_s if lease_ttl_s is not None else default_ttl()
    if executor not in ("local", "ray"):
        raise SemfiError(f"unknown executor {executor!r}; use local or ray")
    previous = raise_on_signals() if threading.current_thread() is threading.main_thread() else None
    root = Path(out_dir) if out_dir else default_out_dir(manifest_path)
    # Taken before they are read: a file changed while the run reads it or later does not match them.
    read_first = {str(path): stat_identity(path) for path in (Path(manifest_path), root / DECISIONS_NAME)}
    try:
        manifest, layout, jobs = prepare_run(
            manifest_path,
            out_dir,
            backend,
            options,
            preview=preview,
            lease_ttl_s=lease_ttl_s,
            command_options=command_options,
        )
        if shard is not None:
            index, count = shard
            jobs = [job for job in jobs if shard_of(job.pair_id, count) == index]
        ledger = JobLedger(layout, deep=retry_failed).load()
        plan = split_jobs(jobs, ledger, retry_failed=retry_failed, force=force)
        # Keyframes of video rows: one forward decode per source, before its jobs run (media/keyframe_cache.py).
        fill_for_pairs(keyframe_cache_for(layout.root, options.extra), [job.pair for job in plan.todo])
        records: dict[str, dict] = {}
        summary = RunSummary(out=layout.root, total=len(jobs), skipped=len(plan.finished))
        summary.job_keys = {job.pair_id: job.key for job in jobs}
        summary.planned_files = read_first | {path: ident for job in jobs for path, (ident, _) in job.inputs.items()}
        deciding = deciding_files(jobs, options)
        summary.deciding_files = None if deciding is None else {str(p): stat_identity(p) for p in deciding}
        settings = ClaimSettings(since=time.time(), lease_ttl_s=lease_ttl_s, fresh_only=force, preview=preview)
        try:
            _execute(plan, layout, options, settings, records, summary, show_progress, executor, ray_address,
                     workers, gpus)  # fmt: skip
        except RunInterrupted as exc:
            summary.interrupted = exc
        gone = _collect(plan, ledger, layout, settings, records, summary)
        name = "metrics.parquet" if shard is None else f"metrics.shard-{shard[0]}-of-{shard[1]}.parquet"
        inputs = (layout.root / "manifest.parquet", layout.ledger, layout.root / "run.json")
        if plan.todo or gone or not _newer_than(layout.root / name, inputs):
            write_metrics(layout.root / name, manifest, records)  # (a resume with nothing to do keeps it)
        summary.metrics_path = layout.root / name
        summary.wall_s = time.time() - t0
        return summary
    finally:
        if previous is not None:
            restore_signals(previous)


def _execute(plan, layout, options, settings, records, summary, show_progress, executor, address, workers, gpus):
    with _progress(summary.total, len(plan.finished), show_progress) as advance:

        def on_record(record: dict) -> None:
            records[record["pair_id"]] = record
            summary.ran += 1
            advance(record)

        if not plan.todo:
            return  # all finished: nothing to start (no Ray cluster, no worker processes)
        if workers == "auto":
            workers = auto_workers(plan.todo)
        if executor != "ray":  # Ray's actors share the nodes' CPUs as Ray schedules them
            settings = dataclasses.replace(settings, spare_thread=usable_cpus() >= 2 * workers)
        if executor == "ray":
            from semfi_batch.run.ray_executor import run_on_ray

            run_on_ray(plan.todo, layout, options, settings, on_record, address=address, workers=workers)
        elif workers > 1:
            summary.dead_workers = _run_processes(plan.todo, layout, options, settings, on_record, workers, gpus)
        else:
            work_through(plan.todo, layout, options, settings, on_record)


# Work (pixels read or made: two keys and the gap's frames per job) that pays for one more worker process:
# starting one costs about half a second of a core, and flow handles about 40 Mpixel/s of this per core.
WORKER_PIXELS = 20e6


def auto_workers(jobs: list[Job]) -> int:
    """`--workers auto`: one worker per physical core when every job's backend scales with workers (the CPU
    backends) and there is work enough to pay for starting them (WORKER_PIXELS each; at least 4 jobs each
    when frame sizes are unknown); else 1."""
    if not jobs or not all(backend_class(job.backend).scales_with_workers for job in jobs):
        return 1
    sizes = [job.pair.output_size if job.pair.keyframe_size or job.pair.width else None for job in jobs]
    if all(sizes):
        pixels = sum(w * h * (2 + job.pair.gap_frames) for job, (w, h) in zip(jobs, sizes, strict=True))
        enough = int(pixels // WORKER_PIXELS)
    else:
        enough = len(jobs) // 4
    return max(1, min(physical_cores(), enough))


def physical_cores() -> int:
    """Physical cores this process may use: distinct (package, core) pairs among the CPUs in its affinity mask
    (hyper-threads share a core's units, and flow gains nothing from a second one)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(usable_cpus()))
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text(), topology.joinpath("core_id").read_text()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def _collect(plan, ledger, layout, settings, records, summary) -> bool:
    """Every job's record as the output root holds it now, counted into the summary. A finished job whose
    folder was removed while the run went on (by hand, by a cleanup) counts as failed, named, not as done;
    returns whether one was."""
    try:
        present = set(os.listdir(layout.jobs))
    except OSError:
        present = set()
    gone = False
    for job in plan.finished:
        if job.pair_id in records:
            continue
        if job.pair_id not in present:
            summary.failures.append((job.pair_id, f"its folder {layout.jobs / job.pair_id} was removed during this "
                                     "run; run again to make it"))  # fmt: skip
            summary.failed += 1
            gone = True
        elif (record := ledger.record(job.pair_id, job.key)) is not None:
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
    mark_regenerated(layout.root, {pid: record for pid, record in records.items() if record["status"] == "done"})
    return gone


def _run_processes(jobs, layout, options, settings, on_record, workers, gpus) -> list[str]:
    """N worker processes (spawned, so each loads its own model), pinned round-robin to `gpus`, each in its own
    process group and sending records through its own pipe. Returns the workers that died, named; the others
    finish the jobs. RunInterrupted stops every worker (SIGTERM to its group, then SIGKILL) and propagates."""
    ctx = multiprocessing.get_context("spawn")
    procs: list[tuple[int, multiprocessing.Process]] = []
    conns: dict = {}  # receiving end -> worker number
    dead: list[str] = []
    fatal: list[str] = []  # what stopped a worker that the whole run must stop for (a full disk)

    def on_message(message: dict) -> None:
        if "fatal" in message:
            fatal.append(message["fatal"])
        else:
            on_record(message)

    try:
        for i in range(1, workers + 1):
            gpu = gpus[(i - 1) % len(gpus)] if gpus else None
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=worker_process, args=(jobs, layout.root, options, settings, send, gpu, (i - 1, workers)),
                daemon=True,
                name=f"semfi-worker-{i}",
            )  # fmt: skip
            proc.start()
            send.close()
            procs.append((i, proc))
            conns[receive] = i
        running = dict(procs)
        while running or conns:
            sentinels = {proc.sentinel: i for i, proc in running.items()}
            for ready in wait_for([*conns, *sentinels], timeout=1.0):
                if ready in conns:
                    _receive(ready, conns, on_message)
                elif ready in sentinels:
                    i = sentinels[ready]
                    proc = running.pop(i)
                    proc.join()
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pid, signal.SIGKILL)  # what it left running (ffmpeg) goes with it
                    if proc.exitcode == FATAL_EXIT:
                        pass  # it said why (a full disk): raised below
                    elif proc.exitcode:
                        dead.append(f"worker {i} (pid {proc.pid}) {_how_it_ended(proc.exitcode)}")
            if not running:
                for conn in list(conns):  # what the last workers sent before exiting
                    while conn in conns and conn.poll():
                        _receive(conn, conns, on_message)
                    if conn in conns:
                        conns.pop(conn).close()
    except RunInterrupted:
        _stop_workers([p for _, p in procs], conns, on_record)
        raise
    if fatal:
        raise DiskFull(fatal[0])  # as a single-process run would: the same one line, nothing half-written kept
    return dead


def _receive(conn, conns: dict, on_record: Callable[[dict], None]) -> None:
    try:
        record = conn.recv()
    except (EOFError, OSError, ValueError, TypeError, AttributeError, ImportError, Exception):
        conns.pop(conn, None)  # the worker exited, or died mid-message: only its own pipe is affected
        with contextlib.suppress(OSError):
            conn.close()
        return
    on_record(record)


def _stop_workers(procs, conns: dict, on_record: Callable[[dict], None]) -> None:
    """SIGTERM every worker's process group: each abandons its job, releases its lease and exits; SIGKILL the
    ones still there after STOP_GRACE_S. Records sent meanwhile still count."""
    for proc in procs:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
            os.killpg(proc.pid, signal.SIGCONT)  # a stopped worker must run to handle it
    deadline = time.time() + STOP_GRACE_S
    for proc in procs:
        while proc.is_alive() and time.time() < deadline:
            for conn in list(conns):
                while conn in conns and conn.poll(0):
                    _receive(conn, conns, on_record)
            proc.join(0.1)
    for proc in procs:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.join(5)


def _how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def write_metrics(path: Path, manifest: Manifest, records: dict[str, dict]) -> Path:
    """metrics.parquet: one row per pair that has a record, in manifest order, with the user's columns. Each
    row comes from the job's own record (backend included)."""
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
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_atomic(path, buffer.getvalue())
    return path


def _claim_root(layout: RunLayout, manifest: Manifest, settings: dict) -> None:
    """One settings set per output root: the first run writes run.json (created exclusively, so of two runs
    starting together one writes it and the other compares); a run with other settings is refused (exit 2).
    Also keeps a copy of the manifest beside the outputs (splice and report read it)."""
    path = layout.root / "run.json"
    info = {"manifest": str(manifest.path.resolve()), "backend": settings["backend"], "schema_version": 1,
            "settings": settings}  # fmt: skip
    existing = _read_json(path)
    if existing is None and not path.exists():
        try:
            write_atomic(path, json.dumps(info, indent=2).encode(), exclusive=True)
            existing = info
        except FileExistsError:
            existing = _read_json(path)
    if existing is None:
        notice(f"{path} was unreadable; written again with this run's settings")
    elif isinstance(existing.get("settings"), dict):
        old = existing["settings"]
        differences = settings_differences(old, settings)
        if differences:
            raise RunSettingsMismatch(
                f"output root {layout.root} holds results made with other settings: {'; '.join(differences)}. "
                "Run with the same settings, or choose another --out"
            )
        if old.get("engine_version") != settings["engine_version"]:
            notice(f"{layout.root} holds jobs made by another version of semfi-batch (engine "
                   f"{old.get('engine_version')}; this is {settings['engine_version']}), whose frames differ: "
                   "its finished jobs are made again")  # fmt: skip
        changed = backend_versions_changed(old, settings)
        if changed:
            notice(f"{layout.root} holds jobs made by another version of a backend ({', '.join(changed)}), whose "
                   "frames differ: those jobs are made again")  # fmt: skip
        info["settings"] = {**settings, "key_settings": {**old.get("key_settings", {}), **settings["key_settings"]}}
    if existing != info:
        write_atomic(path, json.dumps(info, indent=2).encode())
    target = layout.root / "manifest.parquet"
    if manifest.path.suffix.lower() == ".csv":  # CSV manifests are kept as Parquet: splice and report read that
        from semfi_batch.manifest import read_table, write_manifest

        write_manifest(read_table(manifest.path), target)
    elif manifest.path.resolve() != target.resolve():
        try:
            data = manifest.path.read_bytes()
        except OSError as exc:
            raise file_error(exc, manifest.path, "read") from None
        with contextlib.suppress(OSError):
            if target.stat().st_size == len(data) and target.read_bytes() == data:
                return  # the same manifest again (a resume): no rewrite, no fsync
        write_atomic(target, data)


def _newer_than(path: Path, inputs: tuple[Path, ...]) -> bool:
    """Whether `path` exists and was written after every one of `inputs` that exists."""
    try:
        written = path.stat().st_mtime_ns
    except OSError:
        return False
    return all(not p.exists() or p.stat().st_mtime_ns <= written for p in inputs)


def _read_json(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _backend_setting(key_settings: str | None) -> tuple[str, object, object] | None:
    """A backend's key settings as run.json keeps them (JSON of name, version, parameters: JobPlanner) read back;
    None when absent or unreadable."""
    try:
        name, version, params = json.loads(key_settings)
    except (ValueError, TypeError):
        return None
    return name, version, params


def _chosen(key_settings: str) -> object:
    """A backend's key settings without its version: what the user chose. A new version of a backend (other
    frames from the same settings) remakes its jobs, as a new engine does; it is not another set of settings to
    refuse."""
    setting = _backend_setting(key_settings)
    return key_settings if setting is None else (setting[0], setting[2])


def backend_versions_changed(old: dict, new: dict) -> list[str]:
    """The backends whose version differs between an output root's settings and this run's, as "name a -> b"."""
    changed = []
    for name, params in (new.get("key_settings") or {}).items():
        was, now = _backend_setting((old.get("key_settings") or {}).get(name)), _backend_setting(params)
        if was is not None and now is not None and was[1] != now[1]:
            changed.append(f"{name} {was[1]} -> {now[1]}")
    return changed


def settings_differences(old: dict, new: dict) -> list[str]:
    """What differs between the settings of an output root and of this run, in the words of the options."""
    found = []
    if old.get("backend") != new.get("backend"):
        found.append(f"--backend {old.get('backend')} (this run: {new.get('backend')})")
    for name, params in (new.get("key_settings") or {}).items():
        before = (old.get("key_settings") or {}).get(name)
        if before is not None and _chosen(before) != _chosen(params):
            was, now = _backend_setting(before), _backend_setting(params)
            fields = _changed_fields(was[2], now[2]) if was and now else []
            what = "; ".join(fields) if fields else f"{before} (this run: {params})"
            found.append(f"settings of backend {name}: {what}")
    # Roots written before the setting was kept do not say: either is taken.
    if old.get("deinterlace") is not None and old["deinterlace"] != new.get("deinterlace", False):
        found.append("--deinterlace " + ("on" if old["deinterlace"] else "off") + " (this run: "
                     + ("on" if new.get("deinterlace") else "off") + ")")  # fmt: skip
    # Roots written before previews became opt-in have no "preview" setting: they had them.
    if old.get("preview", True) != new.get("preview", False):
        found.append("previews " + ("on (--preview)" if old.get("preview", True) else "off")
                     + " (this run: " + ("on" if new.get("preview", False) else "off") + ")")  # fmt: skip
    return found


def _changed_fields(before: object, after: object, path: str = "") -> list[str]:
    """The leaves that differ between two JSON values, each as "path: old (this run: new)", long values cut
    (a weight file's digest, a prompt): a root made with other weights names the file, not two pages of JSON."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            line
            for key in sorted(set(before) | set(after), key=str)
            for line in _changed_fields(before.get(key), after.get(key), f"{path}.{key}" if path else str(key))
        ]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [line for i, (a, b) in enumerate(zip(before, after)) for line in _changed_fields(a, b, f"{path}[{i}]")]
    if before == after:
        return []
    return [f"{path or 'parameters'}: {_cut(json.dumps(before))} (this run: {_cut(json.dumps(after))})"]


def _cut(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


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
