"""One attempt at a job: its keys read, the backend's frames made and written into a folder of its own, and
the attempt staged there with its record (`execute_job`), for `publish_attempt` (run/job.py) to publish.

An attempt runs in two steps. `start_job` reads the keys and runs the backend, handing each frame to the
writer (FrameWriter); `StartedAttempt.finish` waits for the writes and stages the record. A worker running
a model backend, whose PNG writes take about as long as the model's frames, starts the next job between the
two, so the writes of one job overlap the next one's frames (run/worker.py); other callers do both at once
(`execute_job`)."""

from __future__ import annotations

import os
import resource
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semfi_batch.atomic_write import DISK_FULL_ERRNOS, no_space
from semfi_batch.backends import Backend, InterpolationRequest
from semfi_batch.errors import DiskFull, MediaError, SemfiError
from semfi_batch.media.clips import encode_png_sequence
from semfi_batch.media.fields import interpolate_by_field
from semfi_batch.media.keyframe_cache import KeyframeCache, keyframe_cache_for
from semfi_batch.media.probe import probe_stream
from semfi_batch.run.frame_io import FrameWriter, writer_threads
from semfi_batch.run.identity import stat_identity
from semfi_batch.run.inputs import file_sha256
from semfi_batch.run.job import (
    ENGINE_VERSION,
    Job,
    interlaced,
    key_colour_profile,
    load_keyframes,
    uneven_inbetween_times,
)
from semfi_batch.run.kept_keys import keep_key
from semfi_batch.run.layout import RunLayout
from semfi_batch.run.ledger import output_entries, write_record


@dataclass
class Attempt:
    """One attempt at a job, staged in a folder of its own (outputs, then record.json), not yet published."""

    job: Job
    folder: Path
    record: dict


def execute_job(
    job: Job, backend: Backend, layout: RunLayout, *, preview: bool = False, token: str | None = None
) -> Attempt:
    """Run one attempt at a job in its own folder and return it staged with its record, unpublished. Job-level
    failures (bad media, backend errors) give a 'failed' record; a full disk raises DiskFull and an
    interruption (RunInterrupted) propagates; either way nothing of the attempt is left."""
    return start_job(job, backend, layout, preview=preview, token=token).finish()


@dataclass
class _Made:
    """What the first step of an attempt leaves for the second: the frames handed to the writer."""

    frames: list[Path]
    keyframes: dict
    fps: float
    keys_s: float
    backend_s: float


class StartedAttempt:
    """An attempt whose backend has made its frames, their writes possibly still under way on the writer's
    threads. `finish` waits for them and stages the attempt (as `execute_job` returns it); `abandon` drops
    it whole. One of the two must be called."""

    def __init__(
        self,
        job: Job,
        layout: RunLayout,
        folder: Path,
        token: str,
        started: float,
        notes: dict,
        *,
        writer: FrameWriter | None = None,
        made: _Made | None = None,
        preview: bool = False,
        staged: Attempt | None = None,
    ):
        self.job, self.layout, self.folder, self.token = job, layout, folder, token
        self.started, self.notes = started, notes
        self.writer, self.made, self.preview = writer, made, preview
        self._staged = staged
        self.made_at = time.time()  # the frames are made: the job's own time stops until `finish`

    @property
    def backend_s(self) -> float | None:
        """How long the backend took to make this attempt's frames (None: it failed before)."""
        return self.made.backend_s if self.made is not None else None

    def finish(self) -> Attempt:
        """Wait for the writes and stage the record: failures as `execute_job`."""
        if self._staged is not None:
            return self._staged
        job, folder, made = self.job, self.folder, self.made
        # The record's wall time is the job's own: the time another job ran in between is left out.
        started = self.started + (time.time() - self.made_at)
        try:
            try:
                self.writer.finish()
            finally:
                self.writer.close()
            t0 = time.perf_counter()
            if self.preview:
                sequence = [folder / "start.png", *made.frames, folder / "end.png"]
                encode_png_sequence(sequence, folder / "clip.mp4", made.fps)
            write_s = self.writer.blocked_s + time.perf_counter() - t0
            t0 = time.perf_counter()
            outputs = output_entries(folder, self.writer.digests)
            timing = {"keys_s": made.keys_s, "backend_s": made.backend_s, "write_s": write_s}
            timing["record_s"] = time.perf_counter() - t0
            record = _record(job, "done", None, started, len(made.frames), self.notes, self.token)
            record["keyframes"] = made.keyframes
            record["outputs"] = outputs
            record["timing"] = {key: round(value, 4) for key, value in timing.items()}
            write_record(folder, record)
            self._staged = Attempt(job, folder, record)
        except BaseException as exc:  # noqa: BLE001 - sorted out by _failed_or_raise
            self._staged = _failed_or_raise(exc, job, self.layout, folder, started, self.notes, self.token)
        return self._staged

    def abandon(self) -> None:
        """Drop the attempt whole (its run was interrupted, or stops for a full disk): no write goes on."""
        if self.writer is not None:
            self.writer.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_job(
    job: Job,
    backend: Backend,
    layout: RunLayout,
    *,
    preview: bool = False,
    token: str | None = None,
    spare_thread: bool = False,
) -> StartedAttempt:
    """The first step of an attempt (see the module's docstring): keys read, frames made and handed to the
    writer, in the attempt's own folder. `spare_thread`: the worker of a CPU backend has a hardware thread to
    spare (ClaimSettings.spare_thread), which writes its frames. A job-level failure here gives an attempt
    already staged as failed; a full disk raises DiskFull and an interruption propagates, with nothing of the
    attempt left."""
    started = time.time()
    token = token or uuid.uuid4().hex
    folder = layout.attempt_dir(job.pair_id, job.key, token)
    writer = None
    backend.notes.values = {}
    try:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "frames").mkdir(parents=True)
        cache = keyframe_cache_for(layout.root, backend.options.extra)
        backend_dir = layout.job_work(job.pair_id, job.key) / "backend"
        # A CPU backend's worker without a thread to spare writes on its own thread and only the fsyncs wait
        # behind it; with one, it writes on that thread; a model backend's process writes on threads of their
        # own (run/frame_io.py).
        colour, profile_note = key_colour_profile(job.pair)
        if not backend.scales_with_workers:
            writer = FrameWriter(writer_threads(), colour=colour)
        elif spare_thread:
            writer = FrameWriter(1, colour=colour)
        else:
            writer = FrameWriter(0, sync_behind=True, colour=colour)
        made = _generate(job, backend, backend_dir, folder, cache, writer, layout.key_store, profile_note)
        notes = dict(backend.notes.values)  # the next job's run resets the backend's own
        return StartedAttempt(job, layout, folder, token, started, notes, writer=writer, made=made, preview=preview)
    except BaseException as exc:  # noqa: BLE001 - sorted out by _failed_or_raise
        if writer is not None:
            writer.close()
        failed = _failed_or_raise(exc, job, layout, folder, started, dict(backend.notes.values), token)
        return StartedAttempt(job, layout, folder, token, started, failed.record["notes"], staged=failed)


def _failed_or_raise(
    exc: BaseException, job: Job, layout: RunLayout, folder: Path, started: float, notes: dict, token: str
) -> Attempt:
    """What an exception during an attempt leaves: a job-level failure (bad media, a backend error) a 'failed'
    attempt; a full disk raises DiskFull and an interruption propagates, nothing of the attempt left."""
    if isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS):
        shutil.rmtree(folder, ignore_errors=True)  # the run stops: abandoned whole
        raise no_space(layout.root, f"writing {job.pair_id}") from None
    if not isinstance(exc, Exception):
        shutil.rmtree(folder, ignore_errors=True)  # interrupted: abandoned whole
        raise exc
    return _failed_attempt(job, folder, started, notes, token, exc)


def _check_inputs(job: Job) -> dict[str, dict]:
    """The job's input files as read now, by content; an input replaced since planning fails the job."""
    found = {}
    for path, (ident, digest) in job.inputs.items():
        if stat_identity(Path(path)) != ident:
            try:
                now = file_sha256(Path(path))
            except OSError:
                now = "missing"
            if now != digest:
                raise MediaError(f"{path} changed since this run planned {job.pair_id}; run again to use the new file")
        found[path] = {"sha256": digest}
    return found


def _generate(
    job: Job,
    backend: Backend,
    backend_dir: Path,
    folder: Path,
    cache: KeyframeCache,
    writer: FrameWriter,
    key_store: Path,
    profile_note: str | None,
) -> _Made:
    """Read the job's keys, run the backend and hand its frames and the keys as used (run/kept_keys.py) to
    `writer` (which writes them in the keys' colour profile), for `folder`; `profile_note` says why frames have
    none (key_colour_profile)."""
    pair = job.pair
    t0 = time.perf_counter()
    start, end, fps = load_keyframes(pair, cache)
    # The keys as used are start.png and end.png (their own files, or the pixels encoded), listed with the
    # outputs by SHA-256; the input files they came from are listed here.
    keyframes = {"files": _check_inputs(job)}
    keys_s = time.perf_counter() - t0
    times = uneven_inbetween_times(pair)

    def make(first: np.ndarray, last: np.ndarray, part: str = ""):
        request = InterpolationRequest(
            pair_id=pair.pair_id,
            start=first,
            end=last,
            gap_frames=pair.gap_frames,
            seed=pair.seed,
            prompt=pair.prompt,
            negative_prompt=pair.negative_prompt,
            steps=pair.steps,
            cfg_scale=pair.cfg_scale,
            work_dir=backend_dir / part if part else backend_dir,
            times=times,
        )
        request.work_dir.mkdir(parents=True, exist_ok=True)
        return backend.generate(request)

    if interlaced(pair, cache):
        backend.notes.values["fields"] = probe_stream(pair.source).field_order  # made per field, then woven
        generated = interpolate_by_field(make, start, end)
    else:
        generated = make(start, end)
    frames = []
    t_loop = time.perf_counter()
    for frame in generated:
        if frame.shape != start.shape or frame.dtype != start.dtype:
            raise SemfiError(
                f"backend {job.backend} returned a frame of shape {frame.shape} {frame.dtype}, "
                f"expected {start.shape} {start.dtype}"
            )
        if len(frames) >= pair.gap_frames:
            raise SemfiError(f"backend {job.backend} returned more than {pair.gap_frames} frames")
        frames.append(folder / "frames" / f"{len(frames) + 1:06d}.png")
        writer.write(frames[-1], frame)
    backend_s = time.perf_counter() - t_loop - writer.blocked_s  # less the time the loop waited for writes
    if len(frames) != pair.gap_frames:
        raise SemfiError(f"backend {job.backend} returned {len(frames)} frames, expected {pair.gap_frames}")
    if times is not None:  # after the backend's run, which may start its notes afresh
        backend.notes.values["uneven_times"] = [round(t, 4) for t in times]
    if writer.colour or profile_note:
        backend.notes.values["colour_profile"] = writer.colour.name if writer.colour else profile_note
    for name, frame, image, index in (
        ("start.png", start, pair.start_image, pair.start_frame),
        ("end.png", end, pair.end_image, pair.end_frame),
    ):
        cached = cache.path(pair.source, index) if pair.source is not None else None
        known = job.inputs.get(str(image)) if image is not None else None
        writer.submit(folder / name, keep_key, folder / name, frame, image, cached, known, key_store, writer.colour)
    return _Made(frames, keyframes, fps, keys_s, backend_s)


def _failed_attempt(job: Job, folder: Path, started: float, notes: dict, token: str, exc: BaseException) -> Attempt:
    message = str(exc) if isinstance(exc, SemfiError) else f"{type(exc).__name__}: {exc}"
    record = _record(job, "failed", message, started, 0, notes, token)
    record["outputs"] = {}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write_record(folder, record)
    return Attempt(job, folder, record)


def _record(job: Job, status: str, error: str | None, started: float, frames: int, notes: dict, token: str) -> dict:
    pair = job.pair
    wall = time.time() - started
    width, height = pair.output_size if (pair.keyframe_size or pair.width) else (None, None)
    return {
        "pair_id": pair.pair_id,
        "key": job.key,
        "engine_version": ENGINE_VERSION,
        "status": status,
        "error": error,
        "backend": job.backend,
        "requested_backend": job.requested_backend or job.backend,
        "wall_s": round(wall, 4),
        "frames": frames,
        "s_per_frame": round(wall / frames, 5) if frames else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_gpu_mb": notes.get("peak_gpu_mb"),
        "mode": pair.mode,
        "source": str(pair.source) if pair.source else None,
        "start_frame": pair.start_frame,
        "end_frame": pair.end_frame,
        "start_image": str(pair.start_image) if pair.start_image else None,
        "end_image": str(pair.end_image) if pair.end_image else None,
        "gap_frames": pair.gap_frames,
        "width": width,
        "height": height,
        "seed": pair.seed,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "finished_ts": round(time.time(), 4),
        "notes": dict(notes),
        "attempt": token,
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (so far) and of its largest finished child (ffmpeg), in MB.

    On Linux the process's own figure is VmHWM: getrusage's ru_maxrss survives exec, so a run started by a
    big process (a test runner, a notebook) would report that process's peak instead of its own."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            own = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024.0
    except (OSError, StopIteration, ValueError):
        pass
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return max(own, children)
