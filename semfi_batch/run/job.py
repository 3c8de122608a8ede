"""One job: a manifest row bound to a backend, its content key, and how it is executed."""

from __future__ import annotations

import errno
import hashlib
import json
import resource
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from semfi_batch.backends import Backend, BackendOptions, InterpolationRequest, backend_class
from semfi_batch.backends.routing import BackendRouter
from semfi_batch.errors import MediaError, SemfiError
from semfi_batch.manifest import KeyframePair
from semfi_batch.media.fields import interpolate_by_field, resize_interlaced
from semfi_batch.media.frames import (
    common_layout,
    encode_png_sequence,
    extract_frames,
    read_image,
    resize,
    write_png,
)
from semfi_batch.media.keyframe_cache import KeyframeCache, keyframe_cache_for
from semfi_batch.media.probe import probe_stream, probe_video
from semfi_batch.run.layout import RunLayout
from semfi_batch.run.ledger import write_record

# Bump when the engine's outputs for the same inputs change.
ENGINE_VERSION = 1
PREVIEW_FPS_IMAGES = 12.0
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class DiskFull(SemfiError):
    """The output filesystem is full: the run stops, nothing half-written is kept."""


@dataclass(slots=True)
class Job:
    """A keyframe pair bound to a backend, identified by a key over everything that shapes its output."""

    pair: KeyframePair
    backend: str
    key: str
    requested_backend: str | None = None  # what the row or --backend asked for, e.g. "auto"

    @property
    def pair_id(self) -> str:
        return self.pair.pair_id


class JobPlanner:
    """Binds manifest rows to backends and computes their keys. One planner per planning pass: it caches
    what rows share (backend settings, file identities), which keeps planning 100,000 rows fast."""

    def __init__(
        self,
        default_backend: str,
        options: BackendOptions,
        overrides: dict[str, tuple[int | None, str | None]] | None = None,
    ):
        self.default_backend = default_backend
        self.options = options
        # (seed, backend) per pair_id from `semfi-batch review --regenerate` (RUN/decisions.json): they replace
        # the row's own, so they enter the key and the job runs again with them.
        self.overrides = overrides or {}
        self._backends: dict[str, str] = {}  # name -> JSON of its version and key params
        self._files: dict[Path, str] = {}
        self.router = BackendRouter(default_backend, options)

    def plan(self, pair: KeyframePair) -> Job:
        """The job for `pair`; its key covers every input and setting that shapes the output."""
        if pair.pair_id in self.overrides:
            seed, backend = self.overrides[pair.pair_id]
            pair = replace(pair, seed=pair.seed if seed is None else seed, backend=backend or pair.backend)
        name = self.router.choose(pair)
        if name not in self._backends:
            cls = backend_class(name)
            self._backends[name] = json.dumps([name, cls.version, cls.key_params(self.options)], sort_keys=True)
        size = list(pair.output_size) if pair.keyframe_size or pair.width else None
        files = [self._identity(p) for p in (pair.source, pair.start_image, pair.end_image) if p is not None]
        fields = [
            ENGINE_VERSION, self._backends[name], pair.mode, pair.gap_frames, pair.seed, pair.prompt,
            pair.negative_prompt, size, pair.steps, pair.cfg_scale, pair.start_frame, pair.end_frame, files,
        ]  # fmt: skip
        if self.options.extra.get("deinterlace") and pair.source is not None:
            fields.append("deinterlace")  # other keys stay as they were
        # repr of plain values (str, int, float, None, lists of them) is stable and much cheaper than JSON.
        key = hashlib.sha256(repr(fields).encode()).hexdigest()
        return Job(pair=pair, backend=name, key=key, requested_backend=pair.backend or self.default_backend)

    def _identity(self, path: Path) -> str:
        if path not in self._files:
            try:
                st = path.stat()
                self._files[path] = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
            except OSError:
                self._files[path] = f"{path}|missing"
        return self._files[path]


def load_keyframes(pair: KeyframePair, cache: KeyframeCache | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The pair's two keyframes at the output size, in the source's layout (RGB or RGBA, uint8 or uint16;
    image keys of different layouts are both widened to the richer one), and the preview frame rate.
    Video keyframes come from `cache` (filled per source by the engine) when given."""
    interlaced = False
    if pair.source is not None:
        if cache is not None:  # filled by the engine: no probe of the source's frames needed here
            start, end = cache.frame(pair.source, pair.start_frame), cache.frame(pair.source, pair.end_frame)
        else:
            keys = extract_frames(probe_video(pair.source), [pair.start_frame, pair.end_frame])
            start, end = keys[pair.start_frame], keys[pair.end_frame]
        fps = probe_stream(pair.source).avg_fps or 24.0
        interlaced = _interlaced(pair, cache)
    else:
        start, end = common_layout(read_image(pair.start_image), read_image(pair.end_image))
        fps = PREVIEW_FPS_IMAGES
        if start.shape[:2] != end.shape[:2]:
            raise MediaError(
                f"end_image {pair.end_image} is {end.shape[1]}x{end.shape[0]}, "
                f"start_image is {start.shape[1]}x{start.shape[0]}"
            )
    width, height = pair.width or start.shape[1], pair.height or start.shape[0]
    fit = resize_interlaced if interlaced else resize
    return fit(start, width, height), fit(end, width, height), fps


def _interlaced(pair: KeyframePair, cache: KeyframeCache | None) -> bool:
    """Whether the pair's frames are made per field (an interlaced source not deinterlaced by the run)."""
    return pair.source is not None and probe_stream(pair.source).interlaced and not (cache and cache.deinterlace)


def execute_job(job: Job, backend: Backend, layout: RunLayout, *, preview: bool = True) -> dict:
    """Run one job to a published folder and return its record. Job-level failures (bad media, backend
    errors) give a 'failed' record; a full disk raises DiskFull and publishes nothing."""
    started = time.time()
    work = layout.work_dir(job.pair_id, job.key)
    staged = work / "out"
    try:
        if staged.exists():
            shutil.rmtree(staged)  # frames from a killed attempt: regenerated (backends are deterministic)
        (staged / "frames").mkdir(parents=True)
        backend.notes.values = {}
        count = _generate(job, backend, work, staged, preview, keyframe_cache_for(layout.root, backend.options.extra))
        record = _record(job, "done", None, started, count, backend)
        write_record(staged, record)
        layout.publish(staged, job.pair_id)
        shutil.rmtree(work, ignore_errors=True)
        return record
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            shutil.rmtree(staged, ignore_errors=True)
            raise DiskFull(
                f"no space left on the output filesystem ({layout.root}) while writing {job.pair_id}"
            ) from None
        return _publish_failure(job, layout, started, backend, exc)
    except Exception as exc:  # noqa: BLE001 - a job's failure is recorded and the batch goes on
        return _publish_failure(job, layout, started, backend, exc)


def _generate(
    job: Job, backend: Backend, work: Path, staged: Path, preview: bool, cache: KeyframeCache | None = None
) -> int:
    pair = job.pair
    start, end, fps = load_keyframes(pair, cache)

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
            work_dir=work / "backend" / part if part else work / "backend",
        )
        request.work_dir.mkdir(parents=True, exist_ok=True)
        return backend.generate(request)

    if _interlaced(pair, cache):
        backend.notes.values["fields"] = probe_stream(pair.source).field_order  # made per field, then woven
        generated = interpolate_by_field(make, start, end)
    else:
        generated = make(start, end)
    frames = []
    for frame in generated:
        if frame.shape != start.shape or frame.dtype != start.dtype:
            raise SemfiError(
                f"backend {job.backend} returned a frame of shape {frame.shape} {frame.dtype}, "
                f"expected {start.shape} {start.dtype}"
            )
        if len(frames) >= pair.gap_frames:
            raise SemfiError(f"backend {job.backend} returned more than {pair.gap_frames} frames")
        path = staged / "frames" / f"{len(frames) + 1:06d}.png"
        write_png(path, frame)
        frames.append(path)
    if len(frames) != pair.gap_frames:
        raise SemfiError(f"backend {job.backend} returned {len(frames)} frames, expected {pair.gap_frames}")
    write_png(staged / "start.png", start)
    write_png(staged / "end.png", end)
    if preview:
        encode_png_sequence([staged / "start.png", *frames, staged / "end.png"], staged / "clip.mp4", fps)
    return len(frames)


def _publish_failure(job: Job, layout: RunLayout, started: float, backend: Backend, exc: BaseException) -> dict:
    message = str(exc) if isinstance(exc, SemfiError) else f"{type(exc).__name__}: {exc}"
    record = _record(job, "failed", message, started, 0, backend)
    staged = layout.work_dir(job.pair_id, job.key) / "failed"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    write_record(staged, record)
    layout.publish(staged, job.pair_id)
    return record


def _record(job: Job, status: str, error: str | None, started: float, frames: int, backend: Backend) -> dict:
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
