"""How a job reads and writes frames: keyframe images decoded once for consecutive rows, or ahead of the job
on a spare core (RecentImages), and generated frames written as PNG while the backend makes the next ones
(FrameWriter)."""

from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from semfi_batch.errors import SemfiError
from semfi_batch.media.colour_profile import ColourProfile
from semfi_batch.media.frames import read_image, write_png
from semfi_batch.run.identity import StatIdentity, stat_identity
from semfi_batch.run.layout import fsync_path

WRITER_THREADS_ENV = "SEMFI_WRITER_THREADS"
# A job's start.png and end.png, handed to its writer after its frames: they are not waited for beyond the frames'
# bound (a job of one frame on one writer thread waited for its frame's encoding before handing over its keys).
_KEYS_PER_JOB = 2


class RecentImages:
    """The last few images this process decoded, by path and file identity (device, inode, size, mtime,
    ctime): consecutive rows share a keyframe (one row's end is the next one's start), which is then decoded
    once. The arrays are read-only, so no caller can change what the next job gets. `read_ahead` decodes the
    next job's keys on a background thread while this one runs (model backends, whose process leaves cores
    idle)."""

    def __init__(self, size: int = 4):
        self.size = size
        self._images: OrderedDict[tuple[str, StatIdentity | None], np.ndarray] = OrderedDict()
        self._ahead: dict[str, Future] = {}  # path -> decode under way: (identity throughout, image)
        self._pool: ThreadPoolExecutor | None = None

    def read(self, path: Path) -> np.ndarray:
        """`read_image(path)`, or the array decoded from the same file before (or ahead, by `read_ahead`,
        when the file kept its identity from before that decode to after it and until now)."""
        key = (str(path), stat_identity(Path(path)))
        image = self._images.get(key)
        if image is None:
            image = self._decoded_ahead(key)
            if image is None:
                image = read_image(path)
            image.flags.writeable = False
            self._images[key] = image
            while len(self._images) > self.size:
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(key)
        return image

    def read_ahead(self, paths: list[Path]) -> None:
        """Start decoding `paths` (the next job's keys) on a background thread. Errors are left for `read` to
        meet again in its own decode; at most `size` decodes are kept waiting."""
        for path in paths:
            name = str(path)
            if name in self._ahead or any(key[0] == name for key in self._images):
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="semfi-keys")
            self._ahead[name] = self._pool.submit(_decode_unchanged, Path(path))
            while len(self._ahead) > self.size:
                self._ahead.pop(next(iter(self._ahead))).cancel()

    def _decoded_ahead(self, key: tuple[str, StatIdentity | None]) -> np.ndarray | None:
        future = self._ahead.pop(key[0], None)
        if future is None or key[1] is None:
            return None
        try:
            identity, image = future.result()
        except Exception:  # noqa: BLE001 - read decodes it again and raises what is wrong, naming the file
            return None
        return image if identity == key[1] else None


def _decode_unchanged(path: Path) -> tuple[StatIdentity | None, np.ndarray]:
    """(identity, image): the identity is None when the file changed while it was read."""
    before = stat_identity(path)
    image = read_image(path)
    return (before if stat_identity(path) == before else None), image


RECENT_IMAGES = RecentImages()


def writer_threads() -> int:
    """Threads that write a job's PNGs beside a model backend (one process per run, often on a GPU, with CPU
    cores to spare): SEMFI_WRITER_THREADS (0: on the job's own thread), else one per usable core, at most 4
    (the PNG encoder, hashing and fsync release the GIL)."""
    value = os.environ.get(WRITER_THREADS_ENV)
    if value is not None:
        if not value.isdigit() or int(value) > 64:
            raise SemfiError(f"{WRITER_THREADS_ENV} must be a number of threads 0-64, got {value!r}")
        return int(value)
    return max(1, min(4, usable_cpus()))


def usable_cpus() -> int:
    """Hardware threads this process may use (its affinity mask)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class FrameWriter:
    """Writes a job's frames as PNG (write_png) while the backend makes the next ones: with `threads` > 0
    the encoding runs on that many threads, with at most two frames per thread (and the job's two keys)
    waiting (memory stays bounded); with 0 each frame is written at once. With `sync_behind` (and 0 threads)
    the files are written without their fsync, which one thread of its own then makes, file by file, while the
    job goes on: a CPU backend's worker computes the next frames instead of waiting for the disk (`finish`
    waits for the fsyncs).
    `blocked_s` is the time the job waited for writing; `digests` the SHA-256 of each file written (after
    `finish`). The first error of any write or fsync (a full disk) is raised by `write` or `finish`; after
    `close` (or the end of a `with` block) every pending write has ended, so nothing is written into the
    attempt folder after the job is over."""

    def __init__(self, threads: int, *, sync_behind: bool = False, colour: ColourProfile | None = None):
        if sync_behind and threads:
            raise ValueError("sync_behind writes on the job's own thread: threads must be 0")
        self.threads = threads
        self.blocked_s = 0.0
        self.digests: dict[Path, str] = {}
        self.colour = colour  # the colour description frames are written in (the job's keys')
        self._pending: list = []
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="semfi-png") if threads > 0 else None
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="semfi-sync") if sync_behind else None
        self._syncs: list[Future] = []

    def write(self, path: Path, frame: np.ndarray) -> None:
        """Write `frame` to `path` as PNG (write_png), in the writer's colour description (`colour`)."""
        self.submit(path, functools.partial(write_png, colour=self.colour), path, frame)

    def submit(self, path: Path, write: Callable[..., str], *args) -> None:
        """Run `write(*args)`, which writes `path` and returns the SHA-256 of its bytes, on the writer. With
        `sync_behind` it is called with `sync=False`, and `path` is fsynced behind it."""
        t0 = time.perf_counter()
        if self._syncer is not None:
            self.digests[path] = write(*args, sync=False)
            self._syncs.append(self._syncer.submit(fsync_path, path))
        elif self._pool is None:
            self.digests[path] = write(*args)
        else:
            self._pending.append((path, self._pool.submit(write, *args)))
            while len(self._pending) > 2 * self.threads + _KEYS_PER_JOB:
                self._collect()
        self.blocked_s += time.perf_counter() - t0

    def _collect(self) -> None:
        path, future = self._pending.pop(0)
        self.digests[path] = future.result()

    def finish(self) -> None:
        """Wait for every pending write and fsync; raise the first error."""
        t0 = time.perf_counter()
        try:
            while self._pending:
                self._collect()
            while self._syncs:
                self._syncs.pop(0).result()
        finally:
            self.blocked_s += time.perf_counter() - t0

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the writes not begun and wait for those running: after it, nothing writes any more."""
        if self._pool is not None:
            for _, future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)  # a write still running ends before the attempt is cleaned up
        if self._syncer is not None:
            for future in self._syncs:
                future.cancel()
            self._syncer.shutdown(wait=True)
