"""Generated frames back into the source timeline: one new video per source, audio kept, untouched GOPs
stream-copied (smart cut), the source never modified.

    read_run (runfolder.py)     run folder -> edits per source video, and the rows left out
    build_timeline (timeline.py) edits -> every output frame's source/generated content and time
    plan_pieces (timeline.py)   -> whole GOPs to copy or to re-encode
    assemble_output (join.py)   -> ffmpeg: copy or re-encode the pieces and join them
    mux_output (final_mux.py)   -> the joined video with the source's other streams (audio.py: rebuilt audio)
    output_checks.py            -> the result checked against the plan (a smart cut that fails: re-encoded whole)

Python API: splice_run(run_dir, out_dir=..., output=..., options=SpliceOptions()) -> SpliceSummary."""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from semfi_batch.atomic_write import DISK_FULL_ERRNOS, nearly_full, no_space, parent_folders, pid_alive
from semfi_batch.errors import MediaError, OptionError, OutputPathError, SemfiError
from semfi_batch.media.encode import probe_stream_facts, smart_cut_blocker
from semfi_batch.media.probe import probe_video
from semfi_batch.run.layout import check_outside_state
from semfi_batch.splice.final_mux import MUXERS, container_for_name
from semfi_batch.splice.join import Assembly, assemble_output
from semfi_batch.splice.output_checks import JoinCheckFailed
from semfi_batch.splice.runfolder import Edit, RunEdits, RunFolderError, Skipped, read_run
from semfi_batch.splice.timeline import Piece, Timeline

AUDIO_MODES = ("silence", "crossfade")
DEFAULT_OUT_SUBDIR = "spliced"

__all__ = [
    "AUDIO_MODES",
    "Edit",
    "RunFolderError",
    "Skipped",
    "SourceFailure",
    "SourceResult",
    "SpliceOptions",
    "SpliceSummary",
    "output_paths",
    "read_run",
    "splice_run",
    "splice_source",
]


@dataclass(frozen=True)
class SpliceOptions:
    """audio: what fills inserted time ("silence" or "crossfade"); reencode: encode the whole video;
    accepted_only: splice only the jobs accepted in review (rejected ones are always left out)."""

    audio: str = "silence"
    reencode: bool = False
    accepted_only: bool = False


@dataclass
class SourceResult:
    """What splicing one source video did."""

    source: Path
    output: Path
    method: str
    note: str
    applied: list[Edit]
    skipped: list[Skipped]
    timeline: Timeline
    pieces: list[Piece]
    frame_rate: Fraction
    time_base: Fraction
    frames_reencoded: int
    audio_note: str
    dropped_streams: list[str]
    wall_s: float

    @property
    def frames_out(self) -> int:
        return self.timeline.count

    @property
    def duration_s(self) -> float:
        """Video duration of the output, from the first frame's time to the end of the last frame."""
        if self.timeline.count == 0:
            return 0.0
        t = self.timeline.pts
        last = float(t[-1] - t[-2]) if t.shape[0] > 1 else 1.0 / float(self.frame_rate or 25)
        return float((t[-1] - t[0] + last) * self.time_base) if t.shape[0] > 1 else last


@dataclass(frozen=True)
class SourceFailure:
    """A source video that could not be spliced, and why; no output was written for it."""

    source: Path
    output: Path
    why: str


@dataclass
class SpliceSummary:
    """Per-source results, the sources that failed, and the manifest rows left out (missing or failed jobs,
    image pairs...)."""

    run_dir: Path
    results: list[SourceResult]
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[SourceFailure] = field(default_factory=list)

    @property
    def all_skipped(self) -> list[Skipped]:
        return [*self.skipped, *(s for r in self.results for s in r.skipped)]


def output_paths(run: RunEdits, output: Path | None, out_dir: Path | None) -> dict[Path, Path]:
    """Where each source's spliced video goes: OUTPUT (one source only), else OUT_DIR (default
    RUN_DIR/spliced) / <source stem>.spliced<ext>."""
    sources = list(run.sources)
    if output is not None:
        if len(sources) != 1:
            raise OutputPathError(
                f"-o/--output names one file but the run has {len(sources)} source videos; use --out-dir"
            )
        targets = {sources[0]: Path(output)}
    else:
        folder = Path(out_dir) if out_dir is not None else run.run_dir / DEFAULT_OUT_SUBDIR
        targets, used = {}, set()
        for src in sources:
            name = f"{src.stem}.spliced{src.suffix}"
            n = 2
            while name in used:
                name = f"{src.stem}.{n}.spliced{src.suffix}"
                n += 1
            used.add(name)
            targets[src] = folder / name
    for target in targets.values():
        check_outside_state(target, run.run_dir)
        # By any name: a path through a folder not made yet (nosuchdir/../src.mp4, which exists() calls absent
        # and whose folder would be made), a symlink, a hard link; and any source of the run, not only its own.
        for src in sources:
            if target.resolve() == src.resolve() or (target.exists() and src.exists() and target.samefile(src)):
                raise OutputPathError(f"output {target} is the source video {src}; sources are never modified")
        if target.exists() and target.is_dir():
            raise OutputPathError(f"output {target} is a folder")
        if target.suffix.lower() not in MUXERS and not container_for_name(target):
            raise OptionError(
                f"output {target}: ffmpeg knows no container by the name {target.suffix or '(no extension)'}; "
                f"name it for one ({', '.join(sorted(MUXERS))})"
            )
    return targets


def splice_run(
    run_dir: Path,
    *,
    output: Path | None = None,
    out_dir: Path | None = None,
    options: SpliceOptions | None = None,
) -> SpliceSummary:
    """Splice every source video of a run folder (see `semfi-batch splice --help`)."""
    options = options or SpliceOptions()
    if options.audio not in AUDIO_MODES:
        raise OptionError(f"--audio must be one of {', '.join(AUDIO_MODES)}, got {options.audio!r}")
    run = read_run(run_dir, accepted_only=options.accepted_only)
    if not run.sources:
        raise RunFolderError(f"{run_dir}: the manifest has no rows with a source video; nothing to splice")
    targets = output_paths(run, output, out_dir)
    summary = SpliceSummary(run_dir=Path(run_dir), results=[], skipped=list(run.skipped))
    # One source at a time: a source that fails is reported with its reason and the others still go on.
    for src, edits in run.sources.items():
        try:
            result = splice_source(src, edits, targets[src], options)
            # The rows of this source left out before splicing (failed, stale, rejected) are its own: in its
            # table row's count and its timeline's list, as well as in the lines printed after the table.
            result.skipped = [*(s for s in summary.skipped if s.source == src), *result.skipped]
            summary.skipped = [s for s in summary.skipped if s.source != src]
            summary.results.append(result)
        except (SemfiError, OSError, ValueError) as exc:
            why = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
            summary.failed.append(SourceFailure(src, targets[src], why or type(exc).__name__))
    return summary


def splice_source(source: Path, edits: list[Edit], output: Path, options: SpliceOptions) -> SourceResult:
    """Write `output`: `source` with `edits` applied. Written under a temporary name and renamed into place."""
    started = time.time()
    source, output = Path(source), Path(output)
    info = probe_video(source)
    facts = probe_stream_facts(source)
    if facts.decoder and MUXERS.get(output.suffix.lower()) not in ("matroska", "webm"):
        raise MediaError(
            f"{source.name} keeps alpha beside its {facts.codec} picture, which only Matroska and WebM hold: "
            f"write the output as .webm or .mkv, not {output.suffix or 'without a suffix'}"
        )
    usable, skipped = _usable_edits(edits, info.frame_count, source)
    tmp = output.with_name(f".{output.stem}.tmp{os.getpid()}{output.suffix}")
    try:
        done = _write_output(source, facts, usable, output, tmp, options)
    except (SemfiError, OSError, ValueError) as exc:
        raise _about_output(exc, output, tmp, _WORK_PREFIX) from exc
    return SourceResult(
        source=source,
        output=output,
        method=done.method,
        note=done.note,
        applied=usable,
        skipped=skipped,
        timeline=done.timeline,
        pieces=done.pieces,
        frame_rate=facts.frame_rate,
        time_base=probe_stream_facts(output, encoder_settings=False).time_base,
        frames_reencoded=done.frames_reencoded,
        audio_note=done.audio_note,
        dropped_streams=done.dropped_streams,
        wall_s=time.time() - started,
    )


_WORK_PREFIX = ".splice-"  # a splice's work folder, beside its output: .splice-<pid>-<random>


def _about_output(exc: Exception, output: Path, tmp: Path, work_prefix: str) -> SemfiError:
    """A splice's failure said of the user's output file: a full or read-only output filesystem named as
    such (not as the source, nor as the unreadable piece it left: ffmpeg may stop writing a piece without a
    word when the disk fills), the temporary name replaced by the output's."""
    why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    errno_ = exc.errno if isinstance(exc, OSError) else None
    ours = work_prefix in why or tmp.name in why  # a failure on the splice's own files, not on an input
    if errno_ in DISK_FULL_ERRNOS or "No space left" in why or (ours and nearly_full(folder)):
        return no_space(folder, f"writing {output}")
    written = isinstance(exc, OSError) and exc.filename is not None and Path(exc.filename).parent == output.parent
    if errno_ in (errno.EROFS, errno.EACCES, errno.EPERM) and (written or not output.parent.exists()):
        return OutputPathError(f"cannot write {output}: {why}")
    if isinstance(exc, SemfiError):
        exc.args = (why.replace(tmp.name, output.name),)
        return exc
    return MediaError(why.replace(tmp.name, output.name))


def _write_output(source: Path, facts, usable: list[Edit], output: Path, tmp: Path, options: SpliceOptions) -> Assembly:
    """Assemble `output` from `source` and the usable edits under `tmp`, beside it, and rename it into place."""
    with parent_folders(output):
        _remove_stale(output)
        # Named first and made inside the try: a SIGTERM right after tempfile.mkdtemp made the folder, and before
        # the try began, left it behind.
        work = output.parent / f"{_WORK_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            work.mkdir(mode=0o700)
            blocker = "--reencode given" if options.reencode else smart_cut_blocker(facts)
            done: Assembly | None = None
            if blocker is None:
                try:
                    done = assemble_output(
                        source, facts, usable, tmp, work, smart=True, audio_mode=options.audio, note=""
                    )
                except JoinCheckFailed as exc:
                    blocker = f"smart cut did not verify ({exc})"
                    _clear(work)
            if done is None:
                note = f"full re-encode: {blocker}"
                done = assemble_output(
                    source, facts, usable, tmp, work, smart=False, audio_mode=options.audio, note=note
                )
            os.replace(tmp, output)
        finally:
            tmp.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
    return done


def _remove_stale(output: Path) -> None:
    """Remove what killed splices left beside `output` (work folders, temporary outputs): their process is gone."""
    pattern = re.compile(
        rf"^(?:{re.escape(_WORK_PREFIX)}(\d+)-.*|\.{re.escape(output.stem)}\.tmp(\d+){re.escape(output.suffix)})$"
    )
    for entry in output.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or pid_alive(int(match.group(1) or match.group(2))):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _clear(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _usable_edits(edits: list[Edit], frame_count: int, source: Path) -> tuple[list[Edit], list[Skipped]]:
    """Edits inside the video, in order, without overlaps (a later overlapping edit is left out)."""
    usable: list[Edit] = []
    skipped: list[Skipped] = []
    for e in sorted(edits, key=lambda e: (e.start_frame, e.end_frame, e.pair_id)):
        if e.end_frame >= frame_count:
            skipped.append(
                Skipped(e.pair_id, source, f"end_frame {e.end_frame} is past the video's {frame_count} frames")
            )
        elif usable and e.start_frame < usable[-1].end_frame:
            prev = usable[-1]
            skipped.append(
                Skipped(
                    e.pair_id, source,
                    f"overlaps {prev.pair_id} (frames {prev.start_frame}-{prev.end_frame}); kept {prev.pair_id}",
                )
            )  # fmt: skip
        else:
            usable.append(e)
    return usable, skipped
