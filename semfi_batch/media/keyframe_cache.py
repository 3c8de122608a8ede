"""Keyframes of video rows, extracted once per source and kept as PNG files named by what they hold.

`run` fills the cache for each source before its jobs run: one forward decode per source reads every
keyframe its rows name (`extract_frames`), instead of one decode per keyframe. Jobs then read their keys
from the cache; a key that is not there (another node's run, a cache emptied by hand) is extracted on the
spot and stored. A file's name is a hash of the source's identity (resolved path, device, inode, size, mtime, ctime),
the frame index and how it was read (deinterlaced or not), so a changed source never reuses old frames;
files are written under a temporary name and renamed, so concurrent workers never see half a file."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from semfi_batch.errors import SemfiError, VideoOpenFailure
from semfi_batch.media.frames import read_image, write_png
from semfi_batch.media.probe import probe_video
from semfi_batch.media.video_frames import iter_frames
from semfi_batch.run.identity import stat_identity

# Bump when the frames extraction delivers for the same source change.
# 2: YUV to RGB converted with accurate rounding (frame_pipes.TO_RGB_SCALE_FLAGS); 3: the colour of uneven sizes
# (an odd width in 4:2:0) repeated exactly (frame_pipes.full_colour_graph); 4: 8-bit limited-range gray read
# as limited (frame_pipes.range_faithful_graph); 5: the video read past a cover picture listed first
# (probe.VIDEO_STREAM_MAP); a deinterlaced frame a seek lands on, and the first frame of a seek onto a frame not
# coded intra, read from the start; 6: deep YUV and gray converted by zscale (white 65535, not 65283), deep alpha
# scaled to full (frame_pipes.exact_rgb_graph, video_frames.full_scale_alpha); 7: a frame after a seek checked
# against the time the decode from the start gave its packet where a decode lists the frames (an AVI past a
# damaged chunk: one frame late), and frames after a packet the decoder failed on read on one thread (HEVC, VP9:
# their pictures depended on the thread count)
CACHE_VERSION = 7
KEYFRAME_FOLDER = "cache/keyframes"  # in an output root


class KeyframeCache:
    """Keyframes of source videos under `folder` (created on first write)."""

    def __init__(self, folder: Path, *, deinterlace: bool = False):
        self.folder = Path(folder)
        self.deinterlace = deinterlace

    def path(self, source: Path, index: int) -> Path:
        """Where frame `index` of `source` is kept (no probe needed: a worker that finds it reads it)."""
        source = Path(source)
        try:
            st = source.stat()
        except OSError as exc:
            raise VideoOpenFailure(f"cannot open video {source}: {exc.strerror or exc}") from None
        # ctime and inode too: a file rewritten in place with its old size and mtime set back is still noticed.
        identity = f"{source.resolve()}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
        key = f"{CACHE_VERSION}|{identity}|{index}|{self.deinterlace}"
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.png"

    def fill(self, source: Path, indices: Iterable[int]) -> int:
        """Extract the frames of `source` at `indices` that are not cached yet, in one forward decode.
        Returns how many were written."""
        missing = sorted({i for i in indices if not self.path(source, i).exists()})
        if not missing:
            return 0
        info = probe_video(source)
        self.folder.mkdir(parents=True, exist_ok=True)
        written = 0
        for index, frame in iter_frames(info, missing, deinterlace=self.deinterlace):
            write_png(self.path(source, index), frame)
            written += 1
        return written

    def frame(self, source: Path, index: int, read: Callable[[Path], np.ndarray] = read_image) -> np.ndarray:
        """Frame `index` of `source`: from the cache (decoded by `read`), else extracted now and stored. A
        cache file that does not decode (damaged on disk) is removed and extracted again from the source."""
        path = self.path(source, index)
        if not path.exists():
            self.fill(source, [index])
        seen = stat_identity(path)
        try:
            return read(path)
        except SemfiError:
            if stat_identity(path) == seen:  # not already replaced by another worker's extraction
                path.unlink(missing_ok=True)
            self.fill(source, [index])
            return read(path)


def keyframe_cache_for(run_root: Path, extra: dict | None = None) -> KeyframeCache:
    """The keyframe cache of a run's output root (RUN/cache/keyframes), deinterlacing when the run's
    options (BackendOptions.extra) say --deinterlace."""
    return KeyframeCache(Path(run_root) / KEYFRAME_FOLDER, deinterlace=bool((extra or {}).get("deinterlace")))


def fill_for_pairs(cache: KeyframeCache, pairs: Iterable) -> dict[Path, int]:
    """Fill `cache` with both keyframes of every video row among `pairs` (KeyframePair), one decode per
    source. Returns {source: frames written}. Unreadable sources are left to their jobs, which fail with the
    reason in their records."""
    wanted: dict[Path, set[int]] = defaultdict(set)
    for pair in pairs:
        if pair.source is not None:
            wanted[Path(pair.source)].update((int(pair.start_frame), int(pair.end_frame)))
    written = {}
    for source, indices in wanted.items():
        try:
            written[source] = cache.fill(source, indices)
        except (SemfiError, OSError):  # each job reports its own source's problem in its record
            written[source] = 0
    return written
