"""One video, many videos: decoding, probing, cut finding and damage judging together, and the rows each
mode asks for."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from semfi_batch.detect.cuts import CutFinder, is_gradual, stands_out
from semfi_batch.detect.damage import DamageScanner, damage_rows
from semfi_batch.detect.decoding import AnalysisFrames, place_frames
from semfi_batch.detect.options import Cut, DetectedRow, DetectOptions, ProgressFn, VideoDetection
from semfi_batch.errors import MediaError, SemfiError
from semfi_batch.media.probe import probe_video

# --- rows per mode ------------------------------------------------------------------------------------


def _cut_rows(cuts: list[Cut], decoded: np.ndarray, options: DetectOptions) -> list[DetectedRow]:
    rows = []
    for cut in cuts:
        before = np.flatnonzero(decoded[: cut.index])
        if before.size:
            extras = {"content_val": cut.content_val}
            # Frames between the keys (they did not decode) are generated over: an insert keeps every frame.
            gap = max(options.transition_frames, cut.index - int(before[-1]) - 1)
            rows.append(DetectedRow(int(before[-1]), cut.index, "insert", gap, "cut", cut.score, extras))
    return rows


# Frozen frames this many times in a row at every 2nd frame are taken for a drawing held on twos, and said so.
ON_TWOS_RUN = 6


def on_twos_note(reason: np.ndarray) -> list[str]:
    """A note when frozen frames repeat at every 2nd frame for ON_TWOS_RUN or more in a row: animation on twos
    holds each drawing two frames by design, which damage mode finds as freezes like any regular repeat (a
    12.5 frames/s capture doubled to 25); the rows would smooth the holds away."""
    frozen = np.flatnonzero(reason == "freeze")
    if frozen.size < ON_TWOS_RUN:
        return []
    steps = np.diff(frozen) == 2
    spans, start = [], 0
    for i in range(1, frozen.size + 1):  # runs of frozen frames 2 apart
        if i == frozen.size or not steps[i - 1]:
            if i - start >= ON_TWOS_RUN:
                spans.append((int(frozen[start]), int(frozen[i - 1]), i - start))
            start = i
    if not spans:
        return []
    where = ", ".join(f"{a}-{b}" for a, b, _ in spans[:5]) + (", ..." if len(spans) > 5 else "")
    count = sum(k for _, _, k in spans)
    return [f"{count} frozen frames repeat every 2nd frame (frames {where}): animation on twos holds each drawing "
            "for two frames by design; leave those rows out if the holds are meant"]  # fmt: skip


def _stride_rows(
    cuts: list[Cut], decoded: np.ndarray, every: int, first: int = 0
) -> tuple[list[DetectedRow], list[str]]:
    """Rows every `every` frames inside each shot, the first shot starting at frame `first`."""
    n = decoded.shape[0]
    starts = [first] + [c.index for c in cuts]
    ends = [c.index - 1 for c in cuts] + [n - 1]
    rows, notes = [], []
    for shot, (first, last) in enumerate(zip(starts, ends, strict=True)):
        for s in range(first, last - every + 1, every):
            e = s + every
            if not (decoded[s] and decoded[e]):
                notes.append(f"stride keyframe {s if not decoded[s] else e} did not decode: row {s}-{e} skipped")
                continue
            rows.append(DetectedRow(s, e, "replace", every - 1, "stride", None, {"shot": shot}))
    return rows, notes


# --- one video, many videos ---------------------------------------------------------------------------


def detect_video(
    path: Path,
    options: DetectOptions,
    progress: ProgressFn | None = None,
    *,
    probing: Future | None = None,
    frames: AnalysisFrames | None = None,
) -> VideoDetection:
    """Scan one video and return the rows its mode asks for. `progress(done, total)` is called as frames
    decode. `probing` (a probe_video(path) under way) and `frames` (its `open_frames` decoder, started) may
    be given by a caller that set them going early. Raises VideoOpenFailure/MediaError for videos that
    cannot be read."""
    options.check()
    path = Path(path)
    started = time.perf_counter()
    notes: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The probe (the exact frame list every index refers to) runs while ffmpeg already decodes.
        probing = probing or pool.submit(probe_video, path)
        try:
            scan = _scan(frames or open_frames(path, options), options, probing, progress)
        except MediaError:
            probing.result()  # a probe failure says most clearly what is wrong with the file
            raise
    info = probing.result()
    n = info.frame_count
    if scan.count == n:
        placed = np.arange(n)  # every probed frame decoded, in presentation order
    else:
        # Some frames failed to decode (or the decoder made extra ones): only their timestamps can tell
        # which, so decode again with ffmpeg reporting every frame's time.
        notes.append(f"{scan.count} of {n} probed frames decoded in order; placed them by their timestamps")
        scan = _scan(open_frames(path, options, timestamps=True), options, probing, progress)
        placed = place_frames(scan.stamps, info)
    decoded = np.zeros(n, dtype=bool)
    decoded[placed[placed >= 0]] = True
    if not decoded.any():
        raise MediaError(f"cannot decode any frame of {info.path}")
    # Frames made from pictures the file does not hold (it starts inside a GOP) are no keys: taken as frames
    # that did not decode, they were keys of stride rows over the good frames after them, and of insert rows.
    unreferenced = min(info.made_without_references, n)
    decoded[:unreferenced] = False
    if unreferenced:
        notes.append(
            f"frames 0-{unreferenced - 1} come before the video's first keyframe (it starts inside a GOP) and were "
            "made from pictures it does not hold: no row takes a key from them"
        )
    finder, scanner = scan.finder, scan.scanner
    taken, steps = [], []  # (candidate, its Cut): cuts, and fade/dissolve steps not taken
    for c in finder.finish():
        if placed[c.seq] < 0:
            continue
        span = max(1, int(placed[c.seq] - placed[c.prev_seq])) if placed[c.prev_seq] >= 0 else 1
        cut = Cut(
            int(placed[c.seq]), c.score, c.content_val, c.correlation, c.luma_change, c.flatness, span,
            c.colour_change, c.colour_motion,
        )  # fmt: skip
        if options.mode == "damage" and not stands_out(cut, options):
            continue
        (steps if is_gradual(cut, options) and not options.keep_gradual else taken).append((c, cut))
    # --min-scene-len spaces the cuts taken only: a step dropped here must not hide a cut right after it.
    spaced = finder.spaced(c.seq for c, _ in taken if c.by_detector)
    cuts = [cut for c, cut in taken if c.seq in spaced or c.by_colour]
    # The steps reported are those in the detector's own cut list (spaced as its CLI spaces them, steps included).
    listed = finder.spaced(c.seq for c, _ in taken + steps if c.by_detector) if steps else set()
    gradual = [cut for c, cut in steps if c.seq in listed]
    if options.mode == "cuts":
        rows = _cut_rows(cuts, decoded, options)
    elif options.mode == "stride":
        # (after those frames, the first shot starts at the first frame that decoded: the keyframe)
        first = int(np.argmax(decoded)) if unreferenced else 0
        rows, more = _stride_rows(cuts, decoded, int(options.every or 0), first)
        notes += more
    else:
        assert scanner is not None
        reason, score = scanner.judge(placed, n)
        reason[:unreferenced] = "unreferenced"
        rows, more = damage_rows(reason, score, info.frame_times, cuts, options)
        notes += more + on_twos_note(reason)
    if gradual and options.mode != "damage":
        at = ", ".join(str(c.index) for c in gradual)
        notes.append(f"fade/dissolve steps not taken for cuts at frames {at} (--keep-gradual keeps them)")
    if (placed < 0).any():
        notes.append(f"{int((placed < 0).sum())} decoded frames repeated an earlier timestamp and were ignored")
    ft = info.frame_times
    rows = [
        DetectedRow(
            r.start_frame, r.end_frame, r.mode, r.gap_frames, r.reason, r.score,
            {"start_time": float(ft[r.start_frame]), "end_time": float(ft[r.end_frame]), **r.extras},
        )
        for r in rows
    ]  # fmt: skip
    if progress is not None:
        progress(n, n)
    return VideoDetection(
        path=info.path,
        info=info,
        mode=options.mode,
        rows=rows,
        cuts=cuts,
        gradual=gradual,
        notes=notes,
        frames_decoded=scan.count,
        seconds=time.perf_counter() - started,
    )


@dataclass
class _Scan:
    finder: CutFinder
    scanner: DamageScanner | None
    stamps: list[float | None]
    count: int


def open_frames(path: Path, options: DetectOptions, *, timestamps: bool = False) -> AnalysisFrames:
    """Start ffmpeg decoding `path` as the options' mode analyses it (returns the entered AnalysisFrames)."""
    # Cut detection samples pixels as PySceneDetect's CLI does (its linear downscale by a whole factor picks
    # one pixel per block); damage judgement averages them, which is steadier for small changes.
    sampling = "area" if options.mode == "damage" else "neighbor"
    return AnalysisFrames(path, options.analysis_width, sampling=sampling, timestamps=timestamps).__enter__()


def _scan(frames: AnalysisFrames, options: DetectOptions, probing: Future, progress: ProgressFn | None) -> _Scan:
    """Decode once, feeding every frame to the cut finder (or to the damage scanner, which passes the good ones
    on); closes `frames`. Frame times ffmpeg reports (with `timestamps`) are kept for placing the frames."""
    stamps: list[float | None] = []
    finder: CutFinder | None = None
    scanner: DamageScanner | None = None
    total = 0
    try:
        for seq, (stamp, frame) in enumerate(frames):
            if finder is None:
                finder = CutFinder(options, frames.frame_rate)
                scanner = DamageScanner(options, finder) if options.mode == "damage" else None
            stamps.append(stamp)
            if scanner is None:
                finder.feed(seq, frame)
            else:
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                mean, std = cv2.meanStdDev(gray)
                scanner.add(seq, frame, gray, float(mean[0, 0]), float(std[0, 0]))
            if progress is not None and seq % 16 == 15:
                if not total and probing.done() and probing.exception() is None:
                    total = probing.result().frame_count
                progress(seq + 1, total)
    finally:
        frames.close()
    if finder is None:
        raise MediaError(f"cannot decode any frame of {frames.path}")
    if scanner is not None:
        scanner.finish()
    return _Scan(finder, scanner, stamps, len(stamps))


@dataclass(frozen=True)
class DetectFailure:
    """A video that could not be scanned, and why."""

    path: Path
    error: SemfiError


@dataclass
class DetectRun:
    """The outcome of scanning several videos."""

    detections: list[VideoDetection]
    failures: list[DetectFailure]

    @property
    def row_count(self) -> int:
        return sum(len(d.rows) for d in self.detections)


def detect_videos(
    paths: Sequence[Path],
    options: DetectOptions,
    *,
    progress_for: Callable[[Path], ProgressFn | None] | None = None,
    on_result: Callable[[VideoDetection | DetectFailure], None] | None = None,
) -> DetectRun:
    """Scan each video in turn; a video that cannot be read becomes a DetectFailure and the others go on.
    The next videos are probed, and the next one's ffmpeg started, while the current one decodes: their
    start-up time (a good part of a short clip's) overlaps with work."""
    options.check()
    run = DetectRun([], [])
    paths = [Path(p) for p in paths]
    upcoming: AnalysisFrames | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            probes = [pool.submit(probe_video, p) for p in paths[:PROBE_AHEAD]]
            upcoming = _try_open(paths[0], options) if paths else None
            for i, path in enumerate(paths):
                frames, upcoming = upcoming, None
                if i + PROBE_AHEAD < len(paths):
                    probes.append(pool.submit(probe_video, paths[i + PROBE_AHEAD]))
                if i + 1 < len(paths):
                    upcoming = _try_open(paths[i + 1], options)
                progress = progress_for(path) if progress_for is not None else None
                try:
                    result: VideoDetection | DetectFailure = detect_video(
                        path, options, progress, probing=probes[i], frames=frames
                    )
                    run.detections.append(result)
                except SemfiError as exc:
                    result = DetectFailure(path, exc)
                    run.failures.append(result)
                finally:
                    if frames is not None:
                        frames.close()
                if on_result is not None:
                    on_result(result)
        finally:
            if upcoming is not None:
                upcoming.close()
    return run


# Videos probed ahead of the one being decoded: short clips decode faster than ffprobe starts twice.
PROBE_AHEAD = 3


def _try_open(path: Path, options: DetectOptions) -> AnalysisFrames | None:
    try:
        return open_frames(path, options)
    except SemfiError:
        return None  # detect_video opens it again and reports the error in its turn
