"""One job: a manifest row bound to a backend, its content key, how one attempt at it is executed in a folder
of its own, and how that attempt is published (fenced by its lease)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from semfi_batch.backends import Backend, BackendOptions, InterpolationRequest, backend_class
from semfi_batch.backends.routing import BackendRouter
from semfi_batch.errors import DiskFull, MediaError, SemfiError
from semfi_batch.manifest import KeyframePair
from semfi_batch.media.fields import interpolate_by_field, resize_interlaced
from semfi_batch.media.frames import (
    common_layout,
    encode_png_sequence,
    extract_frames,
    resize,
    write_bytes_atomic,
    write_png,
)
from semfi_batch.media.keyframe_cache import KeyframeCache, keyframe_cache_for
from semfi_batch.media.probe import probe_stream, probe_video
from semfi_batch.run.frame_io import RECENT_IMAGES, FrameWriter, writer_threads
from semfi_batch.run.identity import StatIdentity, stat_identity
from semfi_batch.run.inputs import InputHashes, file_sha256
from semfi_batch.run.layout import DISK_FULL_ERRNOS, RunLayout, fsync_dir
from semfi_batch.run.ledger import check_job_folder, output_entries, write_record

# Bump when the engine's outputs for the same inputs change (2: inputs by content, outputs listed in the record).
ENGINE_VERSION = 2
PREVIEW_FPS_IMAGES = 12.0
__all__ = ["DISK_FULL_ERRNOS", "DiskFull", "Job", "JobPlanner", "execute_job", "load_keyframes", "publish_attempt"]


@dataclass(slots=True)
class Job:
    """A keyframe pair bound to a backend, identified by a key over everything that shapes its output."""

    pair: KeyframePair
    backend: str
    key: str
    requested_backend: str | None = None  # what the row or --backend asked for, e.g. "auto"
    # The input files by content: path -> (stat identity at planning, SHA-256), to notice a file replaced mid-run.
    inputs: dict[str, tuple[StatIdentity | None, str]] = field(default_factory=dict)

    @property
    def pair_id(self) -> str:
        return self.pair.pair_id


class JobPlanner:
    """Binds manifest rows to backends and computes their keys. One planner per planning pass: it caches
    what rows share (backend settings, file contents), which keeps planning 100,000 rows fast."""

    def __init__(
        self,
        default_backend: str,
        options: BackendOptions,
        hashes: InputHashes | None = None,
        overrides: dict[str, tuple[int | None, str | None]] | None = None,
    ):
        self.default_backend = default_backend
        self.options = options
        self.hashes = hashes or InputHashes()
        # (seed, backend) per pair_id from `semfi-batch review --regenerate` (RUN/decisions.json): they replace
        # the row's own, so they enter the key and the job runs again with them.
        self.overrides = overrides or {}
        self._backends: dict[str, str] = {}  # name -> JSON of its version and key params
        self._files: dict[Path, tuple[StatIdentity | None, str]] = {}
        self._rows: dict[tuple, tuple[list[str], dict]] = {}
        self.router = BackendRouter(default_backend, options)

    @classmethod
    def from_settings(
        cls,
        settings: dict,
        hashes: InputHashes | None = None,
        overrides: dict[str, tuple[int | None, str | None]] | None = None,
    ) -> JobPlanner:
        """A planner that gives the keys a run with these run.json settings gave (splice, merge)."""
        planner = cls(settings.get("backend") or "flow", BackendOptions(), hashes, overrides)
        planner._backends.update(settings.get("key_settings") or {})
        return planner

    def key_settings(self) -> dict[str, str]:
        """The settings of each backend planned so far, as they enter job keys (kept in run.json)."""
        return dict(self._backends)

    def plan(self, pair: KeyframePair) -> Job:
        """The job for `pair`; its key covers every input (by content) and setting that shapes the output."""
        if pair.pair_id in self.overrides:
            seed, backend = self.overrides[pair.pair_id]
            pair = replace(pair, seed=pair.seed if seed is None else seed, backend=backend or pair.backend)
        name = self.router.choose(pair)
        if name not in self._backends:
            cls = backend_class(name)
            self._backends[name] = json.dumps([name, cls.version, cls.key_params(self.options)], sort_keys=True)
        size = list(pair.output_size) if pair.keyframe_size or pair.width else None
        files, inputs = self._inputs(pair.source, pair.start_image, pair.end_image)
        fields = [
            ENGINE_VERSION, self._backends[name], pair.mode, pair.gap_frames, pair.seed, pair.prompt,
            pair.negative_prompt, size, pair.steps, pair.cfg_scale, pair.start_frame, pair.end_frame, files,
        ]  # fmt: skip
        if self.options.extra.get("deinterlace") and pair.source is not None:
            fields.append("deinterlace")  # other keys stay as they were
        # repr of plain values (str, int, float, None, lists of them) is stable and much cheaper than JSON.
        key = hashlib.sha256(repr(fields).encode()).hexdigest()
        return Job(
            pair=pair, backend=name, key=key, requested_backend=pair.backend or self.default_backend, inputs=inputs
        )

    def _inputs(self, *paths: Path | None) -> tuple[list[str], dict]:
        """(content digests, path -> identity) of a row's files; rows naming the same files share one answer
        (read only), which keeps planning 100,000 rows over a few files fast."""
        if paths not in self._rows:
            present = [p for p in paths if p is not None]
            identities = [self._identity(p) for p in present]
            inputs = {str(p): ident for p, ident in zip(present, identities, strict=True)}
            self._rows[paths] = ([digest for _, digest in identities], inputs)
        return self._rows[paths]

    def _identity(self, path: Path) -> tuple[StatIdentity | None, str]:
        if path not in self._files:
            self._files[path] = self.hashes.identity(path)
        return self._files[path]


def load_keyframes(pair: KeyframePair, cache: KeyframeCache | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The pair's two keyframes at the output size, in the source's layout (RGB or RGBA, uint8 or uint16;
    image keys of different layouts are both widened to the richer one), and the preview frame rate.
    Video keyframes come from `cache` (filled per source by the engine) when given. Images are read through
    RECENT_IMAGES: the arrays returned may be shared and read-only."""
    interlaced = False
    read = RECENT_IMAGES.read
    if pair.source is not None:
        if cache is not None:  # filled by the engine: no probe of the source's frames needed here
            start, end = (cache.frame(pair.source, i, read) for i in (pair.start_frame, pair.end_frame))
        else:
            keys = extract_frames(probe_video(pair.source), [pair.start_frame, pair.end_frame])
            start, end = keys[pair.start_frame], keys[pair.end_frame]
        fps = probe_stream(pair.source).avg_fps or 24.0
        interlaced = _interlaced(pair, cache)
    else:
        start, end = common_layout(read(pair.start_image), read(pair.end_image))
        fps = PREVIEW_FPS_IMAGES
        if start.shape[:2] != end.shape[:2]:
            raise MediaError(
                f"end_image {pair.end_image} is {end.shape[1]}x{end.shape[0]}, "
                f"start_image is {start.shape[1]}x{start.shape[0]}"
            )
    width, height = pair.width or start.shape[1], pair.height or start.shape[0]
    fit = resize_interlaced if interlaced else resize
    return fit(start, width, height), fit(end, width, height), fps


def key_files(pair: KeyframePair, cache: KeyframeCache) -> list[Path]:
    """The image files a job reads its keys from (a video row's: the cache's, where already extracted)."""
    if pair.source is None:
        return [pair.start_image, pair.end_image]
    try:
        paths = [cache.path(pair.source, i) for i in (pair.start_frame, pair.end_frame)]
    except SemfiError:
        return []  # the job reports its source's problem
    return [path for path in paths if path.exists()]


def _interlaced(pair: KeyframePair, cache: KeyframeCache | None) -> bool:
    """Whether the pair's frames are made per field (an interlaced source not deinterlaced by the run)."""
    return pair.source is not None and probe_stream(pair.source).interlaced and not (cache and cache.deinterlace)


class LeaseLost(SemfiError):
    """An attempt lost its job's lease before publishing (paused past its expiry): its output was discarded."""

    def __init__(self, pair_id: str, holder: str):
        super().__init__(f"{pair_id}: lost its lease to {holder} before publishing; this attempt was discarded")
        self.pair_id, self.holder = pair_id, holder


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
    started = time.time()
    token = token or uuid.uuid4().hex
    folder = layout.attempt_dir(job.pair_id, job.key, token)
    try:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "frames").mkdir(parents=True)
        backend.notes.values = {}
        cache = keyframe_cache_for(layout.root, backend.options.extra)
        backend_dir = layout.job_work(job.pair_id, job.key) / "backend"
        count, keyframes, timing, written = _generate(job, backend, backend_dir, folder, preview, cache)
        t0 = time.perf_counter()
        outputs = output_entries(folder, written)
        timing["record_s"] = round(time.perf_counter() - t0, 4)
        record = _record(job, "done", None, started, count, backend, token)
        record["keyframes"] = keyframes
        record["outputs"] = outputs
        record["timing"] = timing
        write_record(folder, record)
        return Attempt(job, folder, record)
    except DiskFull:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            shutil.rmtree(folder, ignore_errors=True)
            raise DiskFull(
                f"no space left on the output filesystem ({layout.root}) while writing {job.pair_id}"
            ) from None
        return _failed_attempt(job, folder, started, backend, token, exc)
    except Exception as exc:  # noqa: BLE001 - a job's failure is recorded and the batch goes on
        return _failed_attempt(job, folder, started, backend, token, exc)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # interrupted: the attempt is abandoned whole
        raise


def publish_attempt(
    layout: RunLayout, attempt: Attempt, still_holds: Callable[[], bool], *, since: float = 0.0
) -> dict:
    """Publish an attempt by one rename, only while `still_holds()` (the fencing check: renew the lease and find
    this claim's token in it). The first complete attempt wins: when jobs/<pair_id> already holds a verified
    done record of this key (finished after `since`: --force replaces older ones), this attempt is discarded
    and that record returned. Raises LeaseLost."""
    job = attempt.job
    target = layout.job_dir(job.pair_id)
    if not still_holds():
        _discard(attempt)
        raise LeaseLost(job.pair_id, "another worker")
    try:
        os.rename(attempt.folder, target)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            _discard(attempt)
            raise
        winner, _ = check_job_folder(target, job.key)
        if winner is not None and float(winner.get("finished_ts") or 0) < since:
            winner = None
        if winner is not None and (winner["status"] == "done" or attempt.record["status"] == "failed"):
            _discard(attempt)
            return winner
        if not still_holds():
            _discard(attempt)
            raise LeaseLost(job.pair_id, "another worker") from None
        trash = layout.confine(layout.root / "trash" / f"{job.pair_id}-{uuid.uuid4().hex[:8]}")
        os.rename(target, trash)  # an older folder (other key, failed, damaged): replaced
        try:
            os.rename(attempt.folder, target)
        except OSError:
            _discard(attempt)  # another attempt published in between: the first complete one stands
            shutil.rmtree(trash, ignore_errors=True)
            winner, _ = check_job_folder(target, job.key)
            if winner is None:
                raise LeaseLost(job.pair_id, "another worker") from None
            return winner
        shutil.rmtree(trash, ignore_errors=True)
    fsync_dir(layout.jobs)
    _tidy_work(layout, job)
    return attempt.record


def _discard(attempt: Attempt) -> None:
    shutil.rmtree(attempt.folder, ignore_errors=True)


def _tidy_work(layout: RunLayout, job: Job) -> None:
    """Drop the job's backend state once published, and its work folders when no other attempt is in them."""
    work = layout.job_work(job.pair_id, job.key)
    shutil.rmtree(work / "backend", ignore_errors=True)
    for folder in (work, work.parent):
        try:
            folder.rmdir()
        except OSError:
            break


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
    job: Job, backend: Backend, backend_dir: Path, folder: Path, preview: bool, cache: KeyframeCache | None = None
) -> tuple[int, dict, dict, dict[Path, str]]:
    """Write the job's frames, keyframes and preview into `folder`; return the frame count, the keyframes by
    content (pixel hashes of the frames as used, and the input files' hashes), the time spent per step and
    the SHA-256 of each file written."""
    pair = job.pair
    t0 = time.perf_counter()
    start, end, fps = load_keyframes(pair, cache)
    digest = RECENT_IMAGES.pixels_sha256  # a key shared with the previous row is hashed once
    keyframes = {"start_sha256": digest(start), "end_sha256": digest(end), "files": _check_inputs(job)}
    keys_s = time.perf_counter() - t0

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
        )
        request.work_dir.mkdir(parents=True, exist_ok=True)
        return backend.generate(request)

    if _interlaced(pair, cache):
        backend.notes.values["fields"] = probe_stream(pair.source).field_order  # made per field, then woven
        generated = interpolate_by_field(make, start, end)
    else:
        generated = make(start, end)
    frames = []
    t_loop = time.perf_counter()
    with FrameWriter(0 if backend.scales_with_workers else writer_threads()) as writer:
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
        loop_blocked = writer.blocked_s  # the backend's loop waited this long for writes
        backend_s = time.perf_counter() - t_loop - loop_blocked
        if len(frames) != pair.gap_frames:
            raise SemfiError(f"backend {job.backend} returned {len(frames)} frames, expected {pair.gap_frames}")
        t0 = time.perf_counter()
        for name, frame, image, index in (
            ("start.png", start, pair.start_image, pair.start_frame),
            ("end.png", end, pair.end_image, pair.end_frame),
        ):
            cached = cache.path(pair.source, index) if pair.source is not None and cache is not None else None
            known = job.inputs.get(str(image)) if image is not None else None
            writer.submit(folder / name, _write_key, folder / name, frame, image, cached, known)
        writer.finish()
    written = writer.digests
    if preview:
        encode_png_sequence([folder / "start.png", *frames, folder / "end.png"], folder / "clip.mp4", fps)
    write_s = loop_blocked + time.perf_counter() - t0
    timing = {"keys_s": round(keys_s, 4), "backend_s": round(backend_s, 4), "write_s": round(write_s, 4)}
    return len(frames), keyframes, timing, written


def _write_key(
    path: Path,
    frame: np.ndarray,
    image: Path | None,
    cached: Path | None = None,
    known: tuple[StatIdentity | None, str] | None = None,
) -> str:
    """Write the keyframe as used; return the SHA-256 of the bytes written. An 8-bit RGB(A) PNG keyframe used
    at its own size is copied byte for byte (its pixels are the file's: decoding and encoding it again would
    only cost time), and so is a video keyframe from the run's keyframe cache (`cached`, written by write_png
    from the decoded frame, any depth) used at its own size; anything else is encoded. Copies are written
    like frames: atomically and fsynced. `known`: the image's (stat identity, SHA-256) as planned."""
    if cached is not None and cached.is_file():
        with Image.open(cached) as im:
            same = im.size == (frame.shape[1], frame.shape[0])
        if same:
            return _copy_bytes(cached, path)
    if image is not None and image.suffix.lower() == ".png" and frame.dtype == np.uint8:
        with Image.open(image) as im:
            same = im.format == "PNG" and im.size == (frame.shape[1], frame.shape[0])
            same = same and im.mode == {3: "RGB", 4: "RGBA"}[frame.shape[2]] and "transparency" not in im.info
        if same:
            return _copy_bytes(image, path, known)
    return write_png(path, frame)


def _copy_bytes(source: Path, target: Path, known: tuple[StatIdentity | None, str] | None = None) -> str:
    """Copy a file's bytes; return their SHA-256: `known`'s when the file still has its identity after the
    read (the bytes are the ones hashed then: any write since changes the ctime), else computed."""
    data = source.read_bytes()
    write_bytes_atomic(target, data)
    if known is not None and known[0] is not None and stat_identity(source) == known[0]:
        return known[1]
    return hashlib.sha256(data).hexdigest()


def _failed_attempt(
    job: Job, folder: Path, started: float, backend: Backend, token: str, exc: BaseException
) -> Attempt:
    message = str(exc) if isinstance(exc, SemfiError) else f"{type(exc).__name__}: {exc}"
    record = _record(job, "failed", message, started, 0, backend, token)
    record["outputs"] = {}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write_record(folder, record)
    return Attempt(job, folder, record)


def _record(
    job: Job, status: str, error: str | None, started: float, frames: int, backend: Backend, token: str
) -> dict:
    pair = job.pair
    wall = time.time() - started
    width, height = pair.output_size if (pair.keyframe_size or pair.width) else (None, None)
    return {
        "pair_id": pair.pair_id,
        "key": job.key,
        "status": status,
        "error": error,
        "backend": job.backend,
        "requested_backend": job.requested_backend or job.backend,
        "wall_s": round(wall, 4),
        "frames": frames,
        "s_per_frame": round(wall / frames, 5) if frames else None,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_gpu_mb": backend.notes.values.get("peak_gpu_mb"),
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
        "notes": dict(backend.notes.values),
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
