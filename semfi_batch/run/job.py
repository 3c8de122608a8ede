"""One job: a manifest row bound to a backend, its content key, its keyframes, and how an attempt at it
(run/attempt.py) is published (fenced by its lease)."""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from semfi_batch.backends import BackendOptions, backend_class
from semfi_batch.backends.routing import BackendRouter
from semfi_batch.errors import MediaError, SemfiError
from semfi_batch.manifest import KeyframePair
from semfi_batch.media.colour_profile import ColourProfile, colour_profile, says_colours_by_png_chunks
from semfi_batch.media.fields import resize_interlaced
from semfi_batch.media.frames import common_layout, may_have_alpha, resize
from semfi_batch.media.keyframe_cache import KeyframeCache
from semfi_batch.media.probe import probe_stream, probe_video, stream_has_alpha
from semfi_batch.media.video_frames import extract_frames
from semfi_batch.run.frame_io import RECENT_IMAGES
from semfi_batch.run.identity import StatIdentity
from semfi_batch.run.inputs import InputHashes
from semfi_batch.run.layout import RunLayout, fsync_path
from semfi_batch.run.ledger import check_job_folder

if TYPE_CHECKING:
    from semfi_batch.run.attempt import Attempt

# Bump when the engine's outputs for the same inputs change: jobs made by an older version are then made again by
# `run` and refused as stale by `splice` (2: inputs by content, outputs listed in the record; 3: keys converted to
# RGB with accurate rounding and turned upright while RGB, VFR in-betweens at their own times, image keys turned by
# their EXIF orientation and their colour profile kept, the colour of odd-sized 4:2:0 frames no longer drifting,
# 16-bit TIFF keys in separate planes or with associated alpha read right). A change that touches few jobs adds
# to those jobs' keys instead (`JobPlanner.plan`), so that the others stay finished.
ENGINE_VERSION = 3
PREVIEW_FPS_IMAGES = 12.0
__all__ = ["Job", "JobPlanner", "LeaseLost", "interlaced", "key_files", "load_keyframes", "publish_attempt"]


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
        self._image_marks: dict[Path, tuple[str, ...]] = {}  # key image -> what of it enters the job's key
        self._source_marks: dict[Path, tuple[str, ...]] = {}  # source video -> what of it enters the job's key
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
        options = BackendOptions(extra={"deinterlace": True} if settings.get("deinterlace") else {})
        planner = cls(settings.get("backend") or "flow", options, hashes, overrides)
        planner._backends.update(settings.get("key_settings") or {})
        return planner

    def without_overrides(self) -> JobPlanner:
        """This planner (its settings and caches, which no override enters) giving the keys the rows have
        without their pending regenerations."""
        other = copy.copy(self)
        other.overrides = {}
        return other

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
        # Changes since engine 3 that touch only some pairs enter their keys (such jobs are made again; other
        # keys stay as they were): frames written with the keys' PNG sRGB, gAMA and cHRM chunks (they had none);
        # keys with alpha, from images or a video source, interpolated and resized premultiplied (the colour
        # under transparent pixels bled into what shows).
        marks = {mark for p in (pair.start_image, pair.end_image) if p is not None for mark in self._marks(p)}
        if pair.source is not None:
            marks.update(self._marks_of_source(pair.source))
        fields += sorted(marks)
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

    def _marks(self, path: Path) -> tuple[str, ...]:
        """What of a key image enters the keys of the jobs that use it (see `plan`), read once per image."""
        if path not in self._image_marks:
            marks = ("png colour chunks",) if says_colours_by_png_chunks(path) else ()
            self._image_marks[path] = marks + (("alpha premultiplied",) if may_have_alpha(path) else ())
        return self._image_marks[path]

    def _marks_of_source(self, path: Path) -> tuple[str, ...]:
        """What of a source video enters the keys of the jobs that use it (see `plan`), probed once per source:
        its pixel format (ProRes 4444, QuickTime Animation, FFV1, VP9 in WebM with alpha...). A source that
        cannot be probed gets none: the manifest's checks and the job itself name it."""
        if path not in self._source_marks:
            try:
                alpha = stream_has_alpha(path)
            except SemfiError:
                alpha = False
            self._source_marks[path] = ("alpha premultiplied",) if alpha else ()
        return self._source_marks[path]


def load_keyframes(pair: KeyframePair, cache: KeyframeCache | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """The pair's two keyframes at the output size, in the source's layout (RGB or RGBA, uint8 or uint16;
    image keys of different layouts are both widened to the richer one), and the preview frame rate.
    Video keyframes come from `cache` (filled per source by the engine) when given. Images are read through
    RECENT_IMAGES: the arrays returned may be shared and read-only."""
    by_field = False
    read = RECENT_IMAGES.read
    if pair.source is not None:
        if cache is not None:  # filled by the engine: no probe of the source's frames needed here
            start, end = (cache.frame(pair.source, i, read) for i in (pair.start_frame, pair.end_frame))
        else:
            keys = extract_frames(probe_video(pair.source), [pair.start_frame, pair.end_frame])
            start, end = keys[pair.start_frame], keys[pair.end_frame]
        fps = probe_stream(pair.source).avg_fps or 24.0
        by_field = interlaced(pair, cache)
    else:
        start, end = common_layout(read(pair.start_image), read(pair.end_image))
        fps = PREVIEW_FPS_IMAGES
        if start.shape[:2] != end.shape[:2]:
            raise MediaError(
                f"end_image {pair.end_image} is {end.shape[1]}x{end.shape[0]}, "
                f"start_image is {start.shape[1]}x{start.shape[0]}"
            )
    width, height = pair.width or start.shape[1], pair.height or start.shape[0]
    fit = resize_interlaced if by_field else resize
    return fit(start, width, height), fit(end, width, height), fps


def key_colour_profile(pair: KeyframePair) -> tuple[ColourProfile | None, str | None]:
    """(the colour description the frames of an image pair are written in, a note for the record): the keys'
    own (an ICC profile; a PNG's gAMA, cHRM, sRGB) when they share one, so keys and in-betweens show alike in a
    colour-managed viewer (a P3 key's red (200, 120, 60) showed as (214, 116, 38) beside in-betweens without
    it); None for keys without one, for video rows, and, with a note saying so, for keys in different ones."""
    if pair.source is not None or pair.start_image is None or pair.end_image is None:
        return None, None
    start, end = colour_profile(pair.start_image), colour_profile(pair.end_image)
    if start == end:
        return start, None
    names = [p.name if p else "none" for p in (start, end)]
    note = f"the keys carry different colour profiles (start: {names[0]}, end: {names[1]})"
    return None, note + "; frames written without one"


# Frame times within this share of the keys' interval of even spacing are taken as even (timestamps rounded
# to the container's clock): only a variable frame rate makes frames at other times.
UNEVEN_TIME_TOLERANCE = 1e-3


def uneven_inbetween_times(pair: KeyframePair) -> tuple[float, ...] | None:
    """Where the frames a replace row makes fall between its keys (0..1), by the source's own frame times,
    when they are not evenly spaced (variable frame rate: a frame made at even times would show the motion
    of another moment than the one it is placed at); None when they are, and for other rows."""
    if pair.source is None or pair.mode != "replace" or pair.gap_frames != pair.end_frame - pair.start_frame - 1:
        return None
    times = probe_video(pair.source).frame_times[pair.start_frame : pair.end_frame + 1]
    span = float(times[-1] - times[0])
    if len(times) != pair.gap_frames + 2 or not span > 0:
        return None
    made = [float(t - times[0]) / span for t in times[1:-1]]
    if not all(0 < a < b < 1 for a, b in zip(made, [*made[1:], 1.0 - 1e-12], strict=True)):
        return None  # times not in order: the splice refuses such a stretch, naming the frame
    even = [i / (pair.gap_frames + 1) for i in range(1, pair.gap_frames + 1)]
    if all(abs(t - e) <= UNEVEN_TIME_TOLERANCE for t, e in zip(made, even, strict=True)):
        return None
    return tuple(made)


def key_files(pair: KeyframePair, cache: KeyframeCache) -> list[Path]:
    """The image files a job reads its keys from (a video row's: the cache's, where already extracted)."""
    if pair.source is None:
        return [pair.start_image, pair.end_image]
    try:
        paths = [cache.path(pair.source, i) for i in (pair.start_frame, pair.end_frame)]
    except SemfiError:
        return []  # the job reports its source's problem
    return [path for path in paths if path.exists()]


def interlaced(pair: KeyframePair, cache: KeyframeCache | None) -> bool:
    """Whether the pair's frames are made per field (an interlaced source not deinterlaced by the run)."""
    return pair.source is not None and probe_stream(pair.source).interlaced and not (cache and cache.deinterlace)


class LeaseLost(SemfiError):
    """An attempt lost its job's lease before publishing (paused past its expiry): its output was discarded."""

    def __init__(self, pair_id: str, holder: str):
        super().__init__(f"{pair_id}: lost its lease to {holder} before publishing; this attempt was discarded")
        self.pair_id, self.holder = pair_id, holder


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
    fsync_path(layout.jobs)
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
