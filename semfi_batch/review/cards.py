"""A run folder as review cards: one per job, in source order (source by source, by frame), with what the
reviewer judges by (reason, score, timecode, backend, warp error, decision) and the pictures: the original
frames a replace row swaps out, the generated ones, the keyframes, and a looping preview of the repaired
stretch with a second of the source on either side, as it will look spliced.

Pictures that need decoding (originals, previews) are made on first request and cached under
RUN/review/<pair_id>/<key>/, <key> naming what they show (the row's source, range and size, and the job's
outputs), so no stale picture is ever shown."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semfi_batch.atomic_write import write_atomic
from semfi_batch.errors import OutputPathError, SemfiError
from semfi_batch.manifest import KeyframePair, load_manifest
from semfi_batch.media.frames import as_rgb8, read_image_rgb8, resize, write_png
from semfi_batch.media.probe import VideoInfo, probe_video
from semfi_batch.media.video_frames import extract_frames
from semfi_batch.review.decisions import DECISIONS_NAME, Decision, current_decisions
from semfi_batch.review.timecode import file_timecode_rate, timecode
from semfi_batch.run.identity import stat_identity
from semfi_batch.run.layout import RunLayout
from semfi_batch.run.ledger import outputs_digest
from semfi_batch.run.sources import manifest_sources, rows_as_run
from semfi_batch.run.stale import UNUSABLE, run_planner, unusable_reason
from semfi_batch.splice.runfolder import MANIFEST_NAME, RECORD_NAME, RunFolderError

CACHE_DIR = "review"
PREVIEW_WIDTH = 480  # the looping preview is scaled down to at most this width
CONTEXT_S = 1.0  # seconds of the source shown before and after the repaired stretch


@dataclass
class JobCard:
    """What the page shows of one job."""

    pair_id: str
    order: int  # position in source order
    row: int  # manifest row
    mode: str
    source: str | None  # path of the source video (None for image pairs)
    source_name: str | None
    reason: str | None
    score: float | None
    start_frame: int | None
    end_frame: int | None
    gap_frames: int
    fps: float | None  # the rate its timecodes count at (review/timecode.py `timecode_rate`)
    timecode_in: str | None  # first generated frame's place in the source
    timecode_out: str | None  # last replaced frame (replace) or the end keyframe (insert)
    status: str  # job: done, failed, not run, or UNUSABLE (run/stale.py) while splice would leave it out
    error: str | None
    backend: str | None  # what the job ran with
    seed: int | None
    key: str | None
    warp_error: float | None
    decision: str = "undecided"
    decided_earlier: str | None = None  # accepted/rejected on outputs the job no longer has (now undecided)
    outputs: str | None = None  # the digest of the outputs shown (run/ledger.py); the page decides on these
    next_seed: int | None = None  # regeneration settings stored for the job
    next_backend: str | None = None
    regeneration_dropped: str | None = None  # a regeneration's settings made for the row before it changed
    regenerations: int = 0
    key_images: list[str] = field(default_factory=list)  # which of "start", "end" the job folder has
    frames: int = 0  # generated frames on disk
    originals: int = 0  # original frames being replaced (replace rows on a video)
    extras: dict[str, Any] = field(default_factory=dict)
    # Why splice leaves the job out (stale: its row or an input changed since it ran; damaged: its files no
    # longer match its record). Its pictures are not shown and it cannot be accepted or rejected.
    unusable: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The card as plain JSON values (NaN scores become null)."""
        data = asdict(self)
        for name in ("score", "warp_error"):
            value = data[name]
            if isinstance(value, float) and not math.isfinite(value):
                data[name] = None
        data["extras"] = {k: _plain(v) for k, v in self.extras.items()}
        for name in ("seed", "next_seed"):  # 63-bit seeds: JavaScript numbers would round them
            data[name] = None if data[name] is None else str(data[name])
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


class RunReview:
    """The run folder seen by the reviewer: cards, decisions and the pictures behind them."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir).absolute()
        manifest_path = self.run_dir / MANIFEST_NAME
        if not self.run_dir.is_dir():
            raise RunFolderError(f"run folder not found: {run_dir}")
        if not manifest_path.exists():
            raise RunFolderError(f"{run_dir} is not a run folder: no {MANIFEST_NAME} (make one with `semfi-batch run`)")
        self._manifest_seen: tuple | None = None
        self._infos: dict[Path, VideoInfo | None] = {}
        self._rates: dict[Path, float] = {}
        # pair_id -> (the files its verdict was drawn from, as they stood, `unusable_reason`): see `_unusable`.
        self._verdicts: dict[str, tuple[tuple, str]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the run's manifest again when a `run` replaced it since (a page left open follows the rows as
        they stand: their ranges are what a decision places)."""
        manifest_path = self.run_dir / MANIFEST_NAME
        try:
            st = manifest_path.stat()
        except OSError as exc:
            raise RunFolderError(f"cannot read {manifest_path}: {exc.strerror or exc}") from None
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        if seen == self._manifest_seen:
            return
        self.manifest = load_manifest(manifest_path, check_media=False)
        self.pairs: dict[str, KeyframePair] = {p.pair_id: p for p in self.manifest.pairs}
        self.original_manifest = _original_manifest(self.run_dir)
        self.sources = manifest_sources(self.run_dir, self.manifest)
        self.rows_as_run = rows_as_run(self.run_dir, self.manifest)  # files resolved as run found them: their keys
        self._verdicts = {}
        self._manifest_seen = seen

    # ---- facts -----------------------------------------------------------------------------------

    def rerun_command(self) -> str:
        """The command that runs the jobs marked to regenerate (`rerun_command`)."""
        return rerun_command(self.run_dir, self.original_manifest or self.run_dir / MANIFEST_NAME)

    def pair_ids(self) -> list[str]:
        """Every job of the manifest, in manifest order."""
        return list(self.pairs)

    def record(self, pair_id: str) -> dict | None:
        """The job's record.json, or None when it has not finished."""
        try:
            record = json.loads((self.run_dir / "jobs" / pair_id / RECORD_NAME).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return record if isinstance(record, dict) else None

    def video_info(self, pair_id: str) -> VideoInfo | None:
        """The probed source video of a job (None for image pairs or a source that is gone)."""
        source = self.sources.get(pair_id)
        if source is None:
            return None
        if source not in self._infos:
            try:
                self._infos[source] = probe_video(source)
            except SemfiError:
                self._infos[source] = None
        return self._infos[source]

    def timecode_rate(self, pair_id: str) -> float | None:
        """The rate the job's source counts timecode at (review/timecode.py `timecode_rate`: its nominal rate,
        not the average that one missing frame moves); None for image pairs or a source that is gone."""
        info = self.video_info(pair_id)
        if info is None:
            return None
        source = self.sources[pair_id]
        if source not in self._rates:
            self._rates[source] = file_timecode_rate(source, info.avg_fps)
        return self._rates[source]

    def cards(self, quality: dict[str, tuple[str, float]] | None = None) -> list[JobCard]:
        """One card per job, in source order: sources in the order the manifest first names them, then
        by frame; image pairs last, in manifest order. `quality`: warp error per job with the digest of the
        outputs it was measured on; a card shows it only for the outputs it shows."""
        self.refresh()
        unusable = self._unusable()
        decisions = current_decisions(self.run_dir, unusable)
        quality = quality or {}
        source_rank: dict[Path, int] = {}
        for pid in self.pairs:
            if pid in self.sources:
                source_rank.setdefault(self.sources[pid], len(source_rank))

        def order_key(pair: KeyframePair) -> tuple:
            if pair.pair_id in self.sources:
                return (0, source_rank[self.sources[pair.pair_id]], pair.start_frame or 0, pair.end_frame or 0)
            return (1, pair.row, 0, 0)

        ordered = sorted(self.pairs.values(), key=order_key)
        return [
            self._card(i, p, decisions.get(p.pair_id, Decision()), quality.get(p.pair_id), unusable.get(p.pair_id, ""))
            for i, p in enumerate(ordered)
        ]

    def _card(
        self, order: int, pair: KeyframePair, decision: Decision, measured: tuple[str, float] | None, unusable: str
    ) -> JobCard:
        """The card of `pair`; `unusable`: why splice leaves its job out ("" when it takes it): such a job's
        frames and keys are of another version of the row (or no longer those its record lists), so none is shown
        beside the row's originals."""
        record = self.record(pair.pair_id) or {}
        outputs = None if unusable else outputs_digest(record)
        warp = measured[1] if measured is not None and outputs is not None and measured[0] == outputs else None
        info = self.video_info(pair.pair_id)
        rate = self.timecode_rate(pair.pair_id) if info is not None and info.avg_fps else None
        tc_in = tc_out = None
        if pair.is_video and rate:
            start = info.timecode  # the source's own timecode, where it has one
            tc_in = timecode(pair.start_frame + 1, rate, start)
            tc_out = timecode(pair.end_frame - 1 if pair.mode == "replace" else pair.end_frame, rate, start)
        score = pair.extras.get("score")
        reason = pair.extras.get("reason")
        source = self.sources.get(pair.pair_id)
        frames_dir = self.run_dir / "jobs" / pair.pair_id / "frames"
        done = record.get("status") == "done" and not unusable
        return JobCard(
            pair_id=pair.pair_id,
            order=order,
            row=pair.row,
            mode=pair.mode,
            source=str(source) if source else None,
            source_name=source.name if source else None,
            reason=str(reason) if reason not in (None, "") else None,
            score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
            start_frame=pair.start_frame,
            end_frame=pair.end_frame,
            gap_frames=pair.gap_frames,
            fps=rate,
            timecode_in=tc_in,
            timecode_out=tc_out,
            status=UNUSABLE if unusable else record.get("status") or "not run",
            error=record.get("error"),
            backend=record.get("backend") or pair.backend,
            seed=record.get("seed", pair.seed),
            key=record.get("key"),
            outputs=outputs,
            warp_error=warp if warp is not None and math.isfinite(warp) else None,
            decision=decision.status,
            decided_earlier=decision.earlier,
            next_seed=decision.seed,
            next_backend=decision.backend,
            regeneration_dropped=decision.dropped,
            regenerations=decision.regenerations,
            key_images=[] if unusable else [w for w in ("start", "end") if self.keyframe(pair.pair_id, w) is not None],
            frames=len(list(frames_dir.glob("*.png"))) if done else 0,
            originals=pair.gap_frames if pair.is_video and pair.mode == "replace" and info is not None else 0,
            extras=dict(pair.extras),
            unusable=unusable or None,
        )

    def _unusable(self) -> dict[str, str]:
        """run/stale.py `unusable_reason` of every job: why splice leaves it out ("" when it takes it). The check
        costs about half a millisecond a job, too much for a page of thousands asked again on every decision, so
        a verdict is kept while every file it was drawn from stands as it did (stat: size, inode, times; a write
        or a rename changes the change time): the record, the outputs it lists and the frames/ folder, the row's
        input files, run.json and decisions.json (the settings and regenerations its key is planned with)."""
        planner = None
        settings = tuple(_stat(self.run_dir / name) for name in ("run.json", DECISIONS_NAME))
        verdicts = {}
        for pid, row in self.rows_as_run.items():
            job_dir = self.run_dir / "jobs" / pid
            seen = self._verdicts.get(pid)
            files = seen[0][1] if seen is not None else ()
            state = (_stat(job_dir / RECORD_NAME), files, settings, _files_state(job_dir, row, files))
            if seen is not None and seen[0] == state:
                verdicts[pid] = seen[1]
                continue
            planner = planner or run_planner(self.run_dir)
            record = self.record(pid) or {}
            files = tuple(record.get("outputs") or ()) if isinstance(record.get("outputs"), dict) else ()
            state = (_stat(job_dir / RECORD_NAME), files, settings, _files_state(job_dir, row, files))
            verdicts[pid] = unusable_reason(job_dir, row, planner)
            self._verdicts[pid] = (state, verdicts[pid])
        return verdicts

    # ---- pictures --------------------------------------------------------------------------------

    def generated_frame(self, pair_id: str, index: int) -> Path | None:
        """The path of generated frame `index` (1-based), or None (also for one that resolves outside the run
        folder: a symlink in a job folder never serves another file)."""
        return self._in_run(self.run_dir / "jobs" / pair_id / "frames" / f"{index:06d}.png")

    def keyframe(self, pair_id: str, which: str) -> Path | None:
        """jobs/<pair_id>/start.png or end.png, or None (also for one that resolves outside the run folder)."""
        return self._in_run(self.run_dir / "jobs" / pair_id / f"{which}.png") if which in ("start", "end") else None

    def _in_run(self, path: Path) -> Path | None:
        """`path` when it is a file that resolves (symlinks followed) inside the run folder, else None."""
        try:
            return RunLayout(self.run_dir).confine(path) if path.is_file() else None
        except OutputPathError:
            return None

    def _cache(self, pair_id: str, *, generated: bool) -> Path:
        """RUN/review/<pair_id>/<key>/: the folder of pictures drawn from what the row shows now, keyed on
        all of it: the row's source (path and file identity), range and mode, the size drawn at, and with
        `generated` (the preview) the job's outputs as its record lists them. A job given other frames
        under the same key (`run --force` of a backend that does not repeat itself), a row given another
        range or source, or a source replaced, draws anew; nothing stale is shown."""
        pair = self.pairs[pair_id]
        source = self.sources.get(pair_id)
        try:
            st = source.stat() if source is not None else None
        except OSError:
            st = None
        shown = [
            str(source) if source else None, [st.st_size, st.st_mtime_ns] if st else None,
            pair.mode, pair.start_frame, pair.end_frame, pair.gap_frames,
            self._output_size(pair_id, self.video_info(pair_id)),
            outputs_digest(self.record(pair_id)) if generated else None,
        ]  # fmt: skip
        key = hashlib.sha256(json.dumps(shown, default=str).encode()).hexdigest()[:16]
        layout = RunLayout(self.run_dir)
        folder = layout.confine(self.run_dir / CACHE_DIR / pair_id / key)  # a symlink out of the run is refused
        folder.mkdir(parents=True, exist_ok=True)
        return layout.confine(folder)

    def original_frame(self, pair_id: str, index: int) -> Path | None:
        """Original frame `index` (1-based) of the stretch a replace row swaps out, at the job's output size;
        decoded on first request and cached."""
        pair = self.pairs.get(pair_id)
        info = self.video_info(pair_id)
        if pair is None or info is None or pair.mode != "replace" or not 1 <= index <= pair.gap_frames:
            return None
        folder = self._cache(pair_id, generated=False)
        cached = folder / f"original_{index:06d}.png"
        if not cached.exists():
            size = self._output_size(pair_id, info)
            frames = decode_frames(info, pair.start_frame + 1, pair.gap_frames, size)
            for i, frame in enumerate(frames, start=1):
                write_png(folder / f"original_{i:06d}.png", frame)
        return cached if cached.exists() else None

    def _output_size(self, pair_id: str, info: VideoInfo | None) -> tuple[int, int]:
        start = self.keyframe(pair_id, "start")
        if start is not None:
            with Image.open(start) as im:
                return im.size
        pair = self.pairs[pair_id]
        if pair.width and pair.height:
            return pair.width, pair.height
        assert info is not None
        return info.width, info.height

    def preview(self, pair_id: str) -> Path | None:
        """A looping GIF of the repaired stretch as it will look spliced: a second of the source before, the
        generated frames, a second after (keyframes and generated frames only for image pairs)."""
        pair = self.pairs.get(pair_id)
        frames = sorted((self.run_dir / "jobs" / pair_id / "frames").glob("*.png")) if pair else []
        layout = RunLayout(self.run_dir)
        frames = [layout.confine(p) for p in frames]  # OutputPathError for one that resolves outside the run
        if pair is None or not frames:
            return None
        cached = self._cache(pair_id, generated=True) / "preview.gif"
        if cached.exists():
            return cached
        width, height = self._output_size(pair_id, self.video_info(pair_id))
        if width > PREVIEW_WIDTH:
            width, height = PREVIEW_WIDTH, max(2, round(height * PREVIEW_WIDTH / width))
        generated = [resize(read_image_rgb8(p), width, height) for p in frames]
        info = self.video_info(pair_id)
        fps = info.avg_fps if info is not None and info.avg_fps else 12.0
        if info is not None:
            context = max(1, round(fps * CONTEXT_S))
            first = max(0, pair.start_frame - context)
            last = min(info.frame_count - 1, pair.end_frame + context)
            before = decode_frames(info, first, pair.start_frame - first + 1, (width, height))
            after = decode_frames(info, pair.end_frame, last - pair.end_frame + 1, (width, height))
        else:
            before = [resize(read_image_rgb8(p), width, height) for p in [self.keyframe(pair_id, "start")] if p]
            after = [resize(read_image_rgb8(p), width, height) for p in [self.keyframe(pair_id, "end")] if p]
        sequence = [*before, *generated, *after]
        write_atomic(cached, _gif(sequence, fps))
        return cached


def _stat(path: Path | str | None) -> tuple | None:
    """What changes when a file is written, replaced or removed (None when absent); the file itself, not a
    symlink's target."""
    if path is None:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _files_state(job_dir: Path, row: KeyframePair, outputs: tuple[str, ...]) -> tuple:
    """`_stat` of a job's listed outputs and frames/ folder, and of its row's input files (followed: a source
    is often a link)."""
    folder = str(job_dir)
    inputs = tuple(
        None if path is None else stat_identity(path) for path in (row.source, row.start_image, row.end_image)
    )
    listed = tuple(_stat(f"{folder}/{name}") for name in outputs)
    return listed, _stat(f"{folder}/frames"), inputs


def _run_info(run_dir: Path) -> dict:
    """run.json: the manifest the run was given and the settings the output root holds ({} when unreadable)."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _original_manifest(run_dir: Path) -> Path | None:
    """The manifest the run was given (run.json), when it still exists."""
    try:
        path = Path(_run_info(run_dir)["manifest"])
    except (KeyError, TypeError):
        return None
    return path if path.exists() else None


def rerun_command(run_dir: Path, manifest: Path) -> str:
    """The `semfi-batch run` command, ready to paste, that runs `manifest` again into `run_dir` with the
    settings its run.json holds: another --backend, or previews or deinterlacing on or off, would be refused
    (run/engine.py `settings_differences`, whose rules this follows); and the options of its latest run that
    choose what the jobs make or whether they may run (without its --allow-morph a remade morph fails)."""
    import shlex

    info = _run_info(run_dir)
    settings = info.get("settings") if isinstance(info.get("settings"), dict) else {}
    words = ["semfi-batch", "run", str(manifest), "--out", str(run_dir)]
    backend = settings.get("backend") or info.get("backend")
    if backend:
        words += ["--backend", str(backend)]
    if settings and settings.get("preview", True):  # roots written before previews became opt-in had them
        words.append("--preview")
    if settings.get("deinterlace"):
        words.append("--deinterlace")
    given = settings.get("options")  # the latest run's --allow-morph, --semantic-gap, model files... (engine.py)
    if isinstance(given, list) and all(isinstance(word, str) for word in given):
        words += given
    return shlex.join(words)


def _gif(frames: list[np.ndarray], fps: float) -> bytes:
    import io

    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], loop=0,
        duration=max(20, round(1000 / fps)), disposal=1, optimize=False,
    )  # fmt: skip
    return buf.getvalue()


def decode_frames(info: VideoInfo, first: int, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """`count` consecutive frames of the video from index `first` (the frame-exact numbering of
    `extract_frames`, in one forward decode), as RGB uint8 for display, resized to `size`."""
    count = max(0, min(count, info.frame_count - first))
    if count == 0:
        return []
    width, height = size
    frames = extract_frames(info, range(first, first + count))
    return [resize(as_rgb8(frames[i]), width, height) for i in range(first, first + count)]
